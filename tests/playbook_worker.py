"""A delivery or an evaluation in its own process, for the crash tests: ``python -m
tests.playbook_worker deliver|evaluate STORE_URL SCHEMA OPTIONS_JSON [NOW]`` (NOW: ISO time)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from dashboard.config import ActionConfig, PlaybooksConfig
from dashboard.playbooks import Deliverer, Loop, evaluate, load_playbooks
from dashboard.store.db import Store

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = [
    ActionConfig(name="tickets", type="tmf621", loopback=True),
    ActionConfig(name="alarms", type="tmf642", loopback=True),
    ActionConfig(name="email", type="smtp", loopback=True),
    ActionConfig(name="sms", type="sms_http", loopback=True),
    ActionConfig(name="chat", type="webhook", loopback=True),
]


def main(argv: list[str]) -> int:
    verb, url, schema, options = argv[0], argv[1], argv[2] or None, json.loads(argv[3])
    now = datetime.fromisoformat(argv[4]) if len(argv) > 4 else datetime.utcnow()
    store = Store(url, schema=schema)
    if verb == "evaluate":
        book = load_playbooks(ROOT / "playbooks.yaml", actions=ACTIONS)
        loop = Loop(book=book, actions={a.name: a for a in ACTIONS}, secret="test")
        with store.begin() as conn:
            result = evaluate(conn, loop, now=now)
        print(json.dumps(dict(result.decided)))
        return 0
    deliverer = Deliverer(store, ACTIONS, PlaybooksConfig(), clock=lambda: now, loopback_options=options)
    result = deliverer.run_once()
    print(json.dumps(dict(result.outcomes)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
