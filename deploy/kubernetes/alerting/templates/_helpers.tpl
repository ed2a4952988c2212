{{/*
What each service is: its PEX in the image, its metrics port (/metrics, /livez, /readyz; as
src/python/alerting/common/ports.py), the partitions of the topic it consumes, the files it
reads from /credentials (each named by an ALERTING_*_FILE setting) and the settings that name
them. A worker is a Kafka consumer group member.
*/}}
{{- define "alerting.catalog" -}}
rule-service:
  pex: src.python.alerting.rule_service/rule-service.pex
  metricsPort: 9102
  worker: false
  kafka: rule-service
  databaseRoles: [control-plane, notification-admin]
  redis: false
rule-updater:
  pex: src.python.alerting.rule_updater/rule-updater.pex
  metricsPort: 9103
  worker: true
  input: rule.changed
  kafka: rule-updater
  databaseRoles: [rule-reader]
  redis: true
evaluator:
  pex: src.python.alerting.evaluator/evaluator.pex
  metricsPort: 9104
  worker: true
  input: alerts.new
  kafka: evaluator
  databaseRoles: [rule-reader]
  redis: true
aggregator:
  pex: src.python.alerting.aggregator/aggregator.pex
  metricsPort: 9105
  worker: true
  input: alerts.matched
  kafka: aggregator
  databaseRoles: [data-plane]
  redis: false
sender:
  pex: src.python.alerting.sender/sender.pex
  metricsPort: 9106
  worker: true
  input: notifications.ready
  kafka: sender
  databaseRoles: [data-plane]
  redis: false
{{- end -}}

{{- define "alerting.name" -}}
{{- printf "%s-%s" .root.Release.Name .service | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "alerting.selectorLabels" -}}
app.kubernetes.io/name: {{ .service }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "alerting.labels" -}}
{{ include "alerting.selectorLabels" . }}
app.kubernetes.io/part-of: alerting-platform
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "alerting.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end -}}

{{/* The settings' name of a database role's password file: control-plane -> CONTROL_PLANE. */}}
{{- define "alerting.roleSetting" -}}
{{ . | upper | replace "-" "_" }}
{{- end -}}

{{/* A file of /credentials, and the setting that names it. */}}
{{- define "alerting.fileEnv" -}}
- name: {{ .setting }}
  value: /credentials/{{ .file }}
{{- end -}}

{{/*
The files a pod reads, one a line: what `alerting.credentialFiles` lists for service or job
`.service` ({root, service}).
*/}}
{{- define "alerting.credentialFiles" -}}
{{- $v := .root.Values -}}
{{- $catalog := include "alerting.catalog" . | fromYaml -}}
{{- if eq .service "migrate" }}
{{- range list "migration" "control-plane" "rule-reader" "data-plane" "notification-admin" }}
database-{{ . }}.password
{{- end }}
{{- if $v.postgres.ca }}
postgres-ca.pem
{{- end }}
{{- else if eq .service "topics" }}
kafka-topic-admin.password
{{- if $v.kafka.ca }}
kafka-ca.pem
{{- end }}
{{- else }}
{{- $entry := get $catalog .service }}
kafka-{{ $entry.kafka }}.password
{{- if $v.kafka.ca }}
kafka-ca.pem
{{- end }}
{{- range $entry.databaseRoles }}
database-{{ . }}.password
{{- end }}
{{- if $v.postgres.ca }}
postgres-ca.pem
{{- end }}
{{- if $entry.redis }}
redis-{{ .service }}.password
rule-snapshot.key
{{- if $v.redis.ca }}
redis-ca.pem
{{- end }}
{{- end }}
{{- if and (eq .service "sender") $v.smtp.password }}
smtp.password
{{- end }}
{{- if eq .service "rule-service" }}
kafka-dead-letter-replay.password
rule-service.crt
rule-service.key
{{- if $v.ruleService.bootstrapAdminKey }}
admin.key
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The read-only /credentials volume of a pod: each of its files projected from its Secret and
key (credentials.secret and the file's name, unless credentials.from names others).
*/}}
{{- define "alerting.credentialsVolume" -}}
{{- $credentials := .root.Values.credentials -}}
- name: credentials
  projected:
    defaultMode: 0440
    sources:
{{- range include "alerting.credentialFiles" . | trim | splitList "\n" }}
{{- $from := get $credentials.from . | default dict }}
      - secret:
          name: {{ $from.secret | default $credentials.secret }}
          items:
            - key: {{ $from.key | default . }}
              path: {{ . }}
{{- end }}
{{- end -}}

{{/* Where the database is, for `user` (none: each service names its role in its settings). */}}
{{- define "alerting.databaseUrl" -}}
{{- $pg := .root.Values.postgres -}}
{{- $query := list -}}
{{- if $pg.sslMode }}{{ $query = append $query (printf "sslmode=%s" $pg.sslMode) }}{{ end -}}
{{- if $pg.ca }}{{ $query = append $query "sslrootcert=/credentials/postgres-ca.pem" }}{{ end -}}
postgresql://{{ if .user }}{{ .user }}@{{ end }}{{ $pg.host }}:{{ $pg.port }}/{{ $pg.database }}{{ if $query }}?{{ join "&" $query }}{{ end }}
{{- end -}}

{{/* The Kafka client settings of principal `.principal`, its password in `.file`. */}}
{{- define "alerting.kafkaEnv" -}}
{{- $kafka := .root.Values.kafka -}}
- name: ALERTING_KAFKA_BOOTSTRAP
  value: {{ $kafka.bootstrap | quote }}
- name: ALERTING_KAFKA_SECURITY_PROTOCOL
  value: {{ $kafka.securityProtocol }}
- name: ALERTING_KAFKA_SASL_MECHANISM
  value: {{ $kafka.saslMechanism }}
- name: ALERTING_KAFKA_SASL_USERNAME
  value: {{ .principal | quote }}
{{ include "alerting.fileEnv" (dict "setting" "ALERTING_KAFKA_SASL_PASSWORD_FILE" "file" .file) }}
{{- if $kafka.ca }}
{{ include "alerting.fileEnv" (dict "setting" "ALERTING_KAFKA_SSL_CA_FILE" "file" "kafka-ca.pem") }}
{{- end }}
{{- end -}}

{{/* Extra settings (env), refused when named like a secret: secrets are files. */}}
{{- define "alerting.extraEnv" -}}
{{- range $name, $value := . }}
{{- if regexMatch "(PASSWORD|KEY|SECRET|TOKEN)$" $name }}
{{- fail (printf "%s looks like a secret: give it as a file (%s_FILE) from a Secret, not as a value" $name $name) }}
{{- end }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
The CPU an instance of `.service` requests: capacity.notificationsPerSecond × its
cpuMicrosPerNotification × headroomPercent/100, over its active instances (at most the
partitions of its input topic), in millicores rounded up, at least minCpuMillicores.
*/}}
{{- define "alerting.cpuMillicores" -}}
{{- $capacity := .root.Values.capacity -}}
{{- $service := get .root.Values.services .service -}}
{{- $active := int $service.replicas -}}
{{- if .partitions }}{{ $active = min $active (int .partitions) }}{{ end -}}
{{- $microsPerSecond := mul (int $capacity.notificationsPerSecond) (int $service.cpuMicrosPerNotification) (int $capacity.headroomPercent) -}}
{{- $divisor := mul 100 1000 $active -}}
{{- max (div (add $microsPerSecond (sub $divisor 1)) $divisor) (int $capacity.minCpuMillicores) -}}
{{- end -}}

{{/* The partitions of topic `.topic` (topics.list). */}}
{{- define "alerting.partitions" -}}
{{- $found := 0 -}}
{{- range .root.Values.topics.list }}{{ if eq .name $.topic }}{{ $found = .partitions }}{{ end }}{{ end -}}
{{- $found -}}
{{- end -}}
