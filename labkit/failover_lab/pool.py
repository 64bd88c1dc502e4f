"""A connection pool (SQLAlchemy) with pre-ping and recycle, each new connection resolving the endpoint anew.

Pre-ping tests a pooled connection before handing it out and replaces a dead one; recycle replaces one older
than RECYCLE_SECONDS. Neither notices a connection that is alive but now to a demoted writer: pre-ping's ping
succeeds, so the pool keeps handing out a connection whose writes are refused as read-only until it is recycled.
(Production pools recycle after minutes or hours; a short one here so that the lab sees it happen.)

Every connection is autocommit, so a connection handed back needs no rollback: `pool_reset_on_return=None`. With
the default, handing back a connection whose server has just died fails its rollback, and SQLAlchemy logs that
with a traceback (in a notebook, on stderr under the cell), although the write's error was already recorded.
"""

from __future__ import annotations

import sqlalchemy

from labkit.failover_lab.app import App

RECYCLE_SECONDS = 5.0


def run(app: App) -> None:
    pool = connection_pool(app)
    while app.running():
        with app.attempt():
            connection = pool.raw_connection()  # checked out: pinged first, replaced when dead or too old
            try:
                app.write(connection)
            finally:
                connection.close()  # back to the pool, still open
        app.pace()
    pool.dispose()


def connection_pool(app: App) -> sqlalchemy.Engine:
    """The pool: one connection, pinged before use, recycled after RECYCLE_SECONDS, handed back as it is."""
    return sqlalchemy.create_engine(
        f"{app.engine.dialect.driver}://",  # the dialect only: connections come from creator
        creator=lambda: app.connect(app.resolve(app.cluster.endpoint)),
        pool_size=1, max_overflow=0, pool_pre_ping=True, pool_recycle=RECYCLE_SECONDS, pool_reset_on_return=None,
    )  # fmt: skip
