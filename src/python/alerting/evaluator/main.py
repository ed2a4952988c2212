"""evaluator: `alerts.new` → match against the in-memory rule index → `alerts.matched`.

Wiring only: the warm start (warm_start.py), the rule follower (follower.py), the
matching step (evaluation.py) and the index (matcher.py) live beside it.
"""

from __future__ import annotations

from alerting.common import topics
from alerting.common.kafka import Companion, Wiring, run_worker
from alerting.common.service import Lifecycle, run_service
from alerting.common.settings import EvaluatorSettings
from alerting.evaluator.alerts import decode_alert_new
from alerting.evaluator.evaluation import AlertEvaluator
from alerting.evaluator.follower import RuleFollower
from alerting.evaluator.warm_start import warm_index


async def run(settings: EvaluatorSettings, lifecycle: Lifecycle) -> None:
    warm = await warm_index(settings, lifecycle.stop)
    follower = RuleFollower(settings, warm.index, warm.next_offset, warm.version)
    # follow() ends early only on RuleOffsetLost: the evaluator then stops, rather than match
    # with an index that no longer follows, and exits with that error; a restart warms again.
    following = Companion(follower.follow, start=follower.start, ready=lambda: not follower.failing, stops_worker=True)
    await run_worker(settings, lifecycle, topics.EVALUATOR, decode_alert_new, lambda producer: Wiring(
        AlertEvaluator(settings, follower.index, producer).handle, [following]), closing=[follower.stop])


def main() -> None:
    run_service("evaluator", EvaluatorSettings(), run)


if __name__ == "__main__":
    main()
