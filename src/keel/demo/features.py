"""The demo's feature chapter: neighbourhood and host feature views over the listings, and the point-in-time
training set the models train from.

Each view is SQL over the listings table, and each value is stamped with the moment it became known, so a
listing only ever sees what was known before it was listed: the neighbourhood's prices over the 30 days up
to the previous midnight, and the host's earlier listings.
"""

from __future__ import annotations

from datetime import timedelta

from keel.features.model import Entity, Feature, FeatureView

__all__ = ["FEATURE_COLUMNS", "REQUESTED", "definitions"]

NEIGHBOURHOOD_SQL = """
WITH daily AS (
    SELECT neighbourhood, date_trunc('day', listed_at) + INTERVAL 1 DAY AS known_at,
           sum(price) AS price_sum, count(*) AS listings
    FROM source GROUP BY ALL
)
SELECT neighbourhood, known_at,
       sum(price_sum) OVER last_30_days / sum(listings) OVER last_30_days AS price_mean_30d,
       (sum(listings) OVER last_30_days)::BIGINT AS listings_30d
FROM daily
WINDOW last_30_days AS (PARTITION BY neighbourhood ORDER BY known_at
                        RANGE BETWEEN INTERVAL 29 DAYS PRECEDING AND CURRENT ROW)
"""

HOST_SQL = """
SELECT host_id, listed_at + INTERVAL 1 SECOND AS known_at,
       count(*) OVER earlier AS listings, avg(price) OVER earlier AS price_mean
FROM source
WINDOW earlier AS (PARTITION BY host_id ORDER BY listed_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""

NEIGHBOURHOOD = Entity("neighbourhood", ["neighbourhood"], "a district of the city")
HOST = Entity("host", ["host_id"], "a person or company listing homes")

REQUESTED = ["neighbourhood_stats:price_mean_30d", "neighbourhood_stats:listings_30d", "host_stats:listings",
             "host_stats:price_mean"]
FEATURE_COLUMNS = [r.replace(":", "__") for r in REQUESTED]  # the training set's columns (full_names=True)


def definitions() -> list[object]:
    """What `keel features apply` would read from a features.py: two entities and two views."""
    neighbourhood = FeatureView(
        "neighbourhood_stats", [NEIGHBOURHOOD], "listings", "known_at",
        [Feature("price_mean_30d", "float64", "mean nightly price of the listings of the last 30 days"),
         Feature("listings_30d", "int64", "listings of the last 30 days")],
        ttl=timedelta(days=30), transform=NEIGHBOURHOOD_SQL, owner="pricing team",
        description="Neighbourhood price level, known at the end of each day", tags={"chapter": "features"})
    host = FeatureView(
        "host_stats", [HOST], "listings", "known_at",
        [Feature("listings", "int64", "listings the host has posted so far"),
         Feature("price_mean", "float64", "the host's mean nightly price so far")],
        ttl=timedelta(days=365), transform=HOST_SQL, owner="pricing team",
        description="What a host has listed before", tags={"chapter": "features"})
    return [NEIGHBOURHOOD, HOST, neighbourhood, host]
