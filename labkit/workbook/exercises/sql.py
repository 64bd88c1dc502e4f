"""04_sql's exercises: a parameterized INSERT on the writer, the row found on the reader, and which instance
answered on the reader endpoint.

The checks query the databases themselves, through the same tunnels and engines as the notebook: the row must
be on the writer and, replicated, on the reader; the instance that answered must be a reader RDS names.
"""

from __future__ import annotations

from typing import Any

from labkit.aws.tags import cluster_roles
from labkit.workbook.exercises.base import LiveLab, Outcome, exercise_check, not_yet, passed

NOTEBOOK = "04_sql"
CUSTOMER = "Robert'); DROP TABLE orders;--"  # the name that breaks SQL built by pasting text together
FIND = "SELECT id, customer, product_id, quantity FROM orders WHERE customer = :customer ORDER BY id"


def _orders(lab: LiveLab, on: str) -> Any:
    from labkit.access.sql import sql  # the databases, through the notebook's tunnels

    return sql(FIND, on=on, params={"customer": CUSTOMER}, config=lab.config, backend=lab.backend)


@exercise_check(
    "04.param-insert",
    notebook=NOTEBOOK,
    task=f"On the writer, add an order of product 7, quantity 2, for the customer {CUSTOMER}, with bound parameters.",
    hints=(
        "Write the INSERT with named placeholders (`VALUES (:product, :customer, :quantity)`) and pass the values in "
        "`params={...}` to `labkit.sql(...)`: the driver sends them apart from the SQL text.",
        "Pasted into the SQL text (an f-string), the quote in the name ends the string and the rest becomes SQL. "
        'The call: `labkit.sql("INSERT INTO orders (product_id, customer, quantity) VALUES (:product, :customer, '
        ':quantity)", params={"product": 7, "customer": ..., "quantity": 2}, config=config)`.',
    ),
    solution=(
        'labkit.sql("INSERT INTO orders (product_id, customer, quantity) VALUES (:product, :customer, :quantity)",\n'
        '           params={"product": 7, "customer": "Robert\'); DROP TABLE orders;--", "quantity": 2}, config=config)'
    ),
)
def param_insert(lab: LiveLab) -> Outcome:
    found = _orders(lab, "writer")  # the orders table is still there, or this raises (no schema: its fix)
    if found.empty:
        return not_yet(
            f"the writer has no order for the customer {CUSTOMER!r} yet; pasted into the SQL text, the name's "
            "quote ends the string and MySQL refuses the statement: bind it as a parameter (:customer)"
        )
    row = found.iloc[-1]
    if (int(row["product_id"]), int(row["quantity"])) != (7, 2):
        return not_yet(
            f"the order for {CUSTOMER!r} is product {row['product_id']}, quantity {row['quantity']}: the task asks "
            "for product 7, quantity 2 (add another one)"
        )
    return passed(
        f"order {row['id']} for {CUSTOMER!r} is on the writer, the name stored as data",
        {"cluster": lab.cluster["DBClusterIdentifier"], "order": str(row["id"])},
    )


@exercise_check(
    "04.read-on-reader",
    notebook=NOTEBOOK,
    task="Read that order back on the reader endpoint: select it by customer into `found`.",
    hints=(
        '`labkit.sql(query, on=..., params=..., config=config)` reads; `on="reader"` sends it through the reader '
        "endpoint. Select from orders where the customer is the name, bound as a parameter again.",
        f'`labkit.sql("{FIND}", on="reader", params={{"customer": ...}}, config=config)`.',
    ),
    solution=(
        'found = labkit.sql("SELECT id, customer, product_id, quantity FROM orders WHERE customer = :customer",\n'
        '                   on="reader", params={"customer": "Robert\'); DROP TABLE orders;--"}, config=config)'
    ),
    answers=("found",),
    needs=("04.param-insert",),
)
def read_on_reader(lab: LiveLab, answer: Any) -> Outcome:
    import pandas as pd  # the learner's result is a DataFrame

    if not isinstance(answer, pd.DataFrame):
        return not_yet(f"found is {type(answer).__name__}: keep the DataFrame labkit.sql returns")
    on_reader = _orders(lab, "reader")
    if on_reader.empty:
        return not_yet(f"the reader has no order for {CUSTOMER!r} yet: is replication running? (labkit.whoami)")
    ids = {int(i) for i in on_reader["id"]}
    shown = {int(i) for i in answer["id"]} if "id" in answer.columns else set()
    if not ids & shown:
        return not_yet(
            f"found has no row of the order(s) {sorted(ids)}: select id and customer from orders, where the customer "
            "is the name bound as :customer"
        )
    return passed(
        f"order {max(ids & shown)} for {CUSTOMER!r} is on the reader: replicated from the writer",
        {"cluster": lab.cluster["DBClusterIdentifier"], "order": str(max(ids & shown))},
    )


def whoami_row(answer: Any, on: str) -> tuple[Any, Outcome | None]:
    """The row of a `labkit.whoami(on)` result, or the outcome that says what else `answer` is."""
    import pandas as pd  # whoami's result is a DataFrame

    if not isinstance(answer, pd.DataFrame) or answer.empty or not {"on", "instance", "read_only"} <= set(answer):
        return None, not_yet("answered is not what labkit.whoami returns: keep its DataFrame")
    row = answer.iloc[0]
    if row["on"] != on:
        return row, not_yet(f"answered asked the {row['on']} endpoint; the task asks about the {on} endpoint")
    return row, None


@exercise_check(
    "04.who-answered",
    notebook=NOTEBOOK,
    task="Prove which DB instance answers on the reader endpoint: ask it with `labkit.whoami`, into `answered`.",
    hints=(
        "`labkit.whoami(on, config=config)` opens a new connection and asks the server its name and whether it is "
        "read-only. Which endpoint does the task ask about?",
        '`answered = labkit.whoami("reader", config=config)`: its `instance` should be a reader, `read_only` True.',
    ),
    solution='answered = labkit.whoami("reader", config=config)',
    answers=("answered",),
)
def who_answered(lab: LiveLab, answer: Any) -> Outcome:
    row, wrong = whoami_row(answer, "reader")
    if wrong:
        return wrong
    writer, readers = cluster_roles(lab.cluster)
    if row["instance"] not in readers:
        role = "the writer" if row["instance"] == writer else "no instance of the cluster"
        return not_yet(f"{row['instance']} is {role} now; ask again (labkit.whoami makes a new connection)")
    if not bool(row["read_only"]):
        return not_yet(f"{row['instance']} answered as writable: a reader must be read-only")
    from labkit.access.sql import whoami  # and the endpoint still leads to a reader now

    now = whoami("reader", config=lab.config, backend=lab.backend).iloc[0]
    if now["instance"] not in readers:
        return not_yet(f"the reader endpoint now leads to {now['instance']}, which is not a reader of the cluster")
    return passed(
        f"the reader endpoint was answered by {row['instance']}, a read-only reader of the cluster",
        {"cluster": lab.cluster["DBClusterIdentifier"], "instance": str(row["instance"])},
    )
