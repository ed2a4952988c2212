ALTER TABLE rules DROP COLUMN updated_by;
ALTER TABLE clients DROP COLUMN updated_by;
DROP TABLE api_keys;
