import json

import structlog

from tollgate_shared.logging import configure_logging


def test_secrets_are_never_written(capsys):
    configure_logging(service="test", log_format="json")
    structlog.get_logger().info(
        "signup",
        password="hunter2hunter2",
        headers={"authorization": "Bearer abc", "accept": "json"},
        note="tg_live_abcdefghijklmnopqrstuvwxyz0123456789ab",
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["password"] == "[redacted]"
    assert line["headers"] == {"authorization": "[redacted]", "accept": "json"}
    assert "abcdefghijklmnop" not in line["note"]
    assert line["service"] == "test"
