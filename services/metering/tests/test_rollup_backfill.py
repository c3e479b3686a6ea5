"""Migration 0002 builds the rollups of the events stored before it, like ingestion would."""

import uuid

import sqlalchemy as sa

from tollgate_metering.app import MIGRATIONS_DIR
from tollgate_metering.config import SERVICE
from tollgate_shared.database import async_database_url
from tollgate_shared.migrations import upgrade

ORG = uuid.uuid4()
EVENTS = [
    # id, type, subject, time, data
    ("t1", "tokens", "c1", "2025-06-10T10:00:10Z", '{"tokens": 1.5, "model": "a"}'),
    ("t2", "tokens", "c1", "2025-06-10T10:00:50Z", '{"tokens": 2, "model": "a"}'),
    ("t3", "tokens", "c1", "2025-06-10T10:00:50Z", '{"tokens": 7}'),
    ("s1", "seats", "c1", "2025-06-10T10:00:00Z", '{"user": "ann"}'),
    ("s2", "seats", "c1", "2025-06-10T10:00:30Z", '{"user": "ann"}'),
    ("r1", "api_requests", "c1", "2025-06-10T10:00:00Z", '{"route": "demo", "status": 200}'),
]


def test_upgrading_builds_rollups_from_stored_events(new_database):
    database_url = new_database("metering_backfill")
    upgrade(
        migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema=SERVICE, revision="0001"
    )
    engine = sa.create_engine(async_database_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO metering.meters VALUES"
                    " (:org, 'tokens', 'Tokens', 'SUM', 'tokens', '{model}', now(), now(), NULL),"
                    " (:org, 'seats', 'Seats', 'UNIQUE_COUNT', 'user', '{}', now(), now(), NULL)"
                ),
                {"org": ORG},
            )
            for event_id, type_, subject, moment, data in EVENTS:
                connection.execute(
                    sa.text(
                        "INSERT INTO metering.usage_events"
                        " (org_id, id, type, subject, time, data, source)"
                        " VALUES (:org, :id, :type, :subject, :time, CAST(:data AS jsonb), 'api')"
                    ),
                    {
                        "org": ORG,
                        "id": event_id,
                        "type": type_,
                        "subject": subject,
                        "time": moment,
                        "data": data,
                    },
                )
        upgrade(migrations_dir=MIGRATIONS_DIR, database_url=database_url, schema=SERVICE)
        with engine.connect() as connection:
            rollups = connection.execute(
                sa.text(
                    "SELECT meter_key, group_key, event_count, value_sum, value_min, value_max,"
                    " latest_event_id, latest_value FROM metering.usage_rollups"
                    " ORDER BY meter_key, group_key"
                )
            ).all()
            distinct = connection.execute(
                sa.text("SELECT meter_key, value FROM metering.usage_distinct_values")
            ).all()
    finally:
        engine.dispose()
    route = {"route": "demo", "method": None, "status": 200, "key_id": None}
    assert [tuple(row) for row in rollups] == [
        ("api_requests", route, 1, None, None, None, "r1", None),
        ("seats", {}, 2, None, None, None, "s2", None),
        ("tokens", {"model": None}, 1, 7, 7, 7, "t3", 7),
        # t2 and t3 share a time: the greater id is the latest, in each group.
        ("tokens", {"model": "a"}, 2, 3.5, 1.5, 2, "t2", 2),
    ]
    assert [tuple(row) for row in distinct] == [("seats", "ann")]
