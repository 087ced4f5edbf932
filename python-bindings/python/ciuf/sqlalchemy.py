"""Feed a ciuf Engine from SQLAlchemy ORM sessions, commit-safely.

::

    from ciuf.sqlalchemy import track

    tracker = track(ciuf_engine, SessionLocal)   # a sessionmaker, Session, AsyncSession, ...

Every flush of a tracked session records the rows it inserted, updated (the new row,
with the old values from the instance's attribute history) and deleted. The records
wait in the session's transaction: they are applied to the engine as ONE transaction
when the database transaction commits, and dropped when it rolls back. A savepoint
(``begin_nested()``) that rolls back drops its own records only. So a view never shows
a write that the database did not keep.

Only tables the ciuf engine has are tracked, and only the columns it has: a ciuf table
may be a projection of the database table.

What the ORM cannot see, this cannot see either: SQL text run with ``execute(text(...))``,
bulk ``update()``/``delete()`` statements without RETURNING, triggers, ``ON DELETE
CASCADE`` done by the database, and writes from other connections or processes. Feed
Core statements with RETURNING through :meth:`Tracker.inserted`, :meth:`Tracker.updated`
and :meth:`Tracker.deleted`; for everything else, open the engine on the database itself
(``Engine("sqlite:///…")`` / ``Engine("postgresql://…")``), which captures every write.
"""

from __future__ import annotations

import enum
import uuid
import warnings
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from sqlalchemy import MetaData, Table, event, inspect, select, types
from sqlalchemy.orm import Mapper, Session, SessionTransaction, scoped_session, sessionmaker

from . import Engine

__all__ = ["Tracker", "mirror", "track"]

_Change = tuple[Any, ...]

_MISSING = object()


class Tracker:
    """Collects a session's ORM writes and applies them to a ciuf engine at commit.

    Made by :func:`track`; :meth:`close` stops tracking.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tables = {name.lower(): name for name in engine.tables()}
        self._columns: dict[str, set[str]] = {}
        self._targets: list[Any] = []
        # Where a session keeps this tracker's records (per tracker: two engines may
        # track one session).
        self._key = f"ciuf.pending.{id(self)}"

    # -- what the application calls ------------------------------------------------

    def inserted(self, session: Any, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Records rows a Core ``insert()`` wrote (for example its RETURNING rows), to be
        applied when ``session``'s transaction commits."""
        name = self._table(table)
        if name is not None:
            self._record(session, [("insert", name, self._row(name, r)) for r in rows])

    def updated(self, session: Any, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Records rows as a Core ``update()`` left them (the RETURNING rows, with the
        primary key): each replaces the row with its key when the transaction commits."""
        name = self._table(table)
        if name is not None:
            self._record(session, [("update", name, self._row(name, r)) for r in rows])

    def deleted(self, session: Any, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Records rows a Core ``delete()`` removed (the RETURNING rows)."""
        name = self._table(table)
        if name is not None:
            self._record(session, [("delete", name, self._row(name, r)) for r in rows])

    def pending(self, session: Any) -> list[_Change]:
        """The changes recorded in ``session`` and not yet committed, oldest first."""
        stacks: dict[int, tuple[SessionTransaction, list[_Change]]] = _sync(session).info.get(self._key, {})
        return [c for _, changes in stacks.values() for c in changes]

    def close(self) -> None:
        """Stops tracking: later flushes and commits are not seen."""
        for target, name, fn in self._targets:
            if event.contains(target, name, fn):
                event.remove(target, name, fn)
        self._targets.clear()

    # -- events ----------------------------------------------------------------------

    def _listen(self, target: Any) -> None:
        hooks: list[tuple[str, Callable[..., Any]]] = [
            ("after_flush", self._after_flush),
            ("after_commit", self._after_commit),
            ("after_transaction_end", self._after_transaction_end),
        ]
        for name, fn in hooks:
            event.listen(target, name, fn)
            self._targets.append((target, name, fn))

    def _after_flush(self, session: Session, _context: Any) -> None:
        changes: list[_Change] = []
        for obj in session.new:
            self._insert(obj, changes)
        for obj in session.dirty:
            if session.is_modified(obj, include_collections=False):
                self._update(obj, changes)
        for obj in session.deleted:
            self._delete(obj, changes)
        if changes:
            self._record(session, changes)

    def _after_commit(self, session: Session) -> None:
        nested = session.get_nested_transaction()
        stacks = session.info.get(self._key, {})
        if nested is not None:
            # A savepoint released: its changes now belong to the enclosing transaction.
            entry = stacks.pop(id(nested), None)
            parent = nested.parent
            if entry and parent is not None:
                stacks.setdefault(id(parent), (parent, []))[1].extend(entry[1])
            return
        root = session.get_transaction()
        if root is None:
            return
        changes = [c for _, cs in stacks.values() for c in cs]
        stacks.clear()
        if changes:
            try:
                self.engine.apply(changes)
            except Exception as err:
                raise type(err)(
                    f"{err} -- the database transaction has committed but ciuf could not apply it;"
                    " the views no longer match the database"
                ) from err

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        stacks = session.info.get(self._key)
        # A transaction that ends without committing (a rollback, or a close) drops
        # what it recorded.
        if stacks is not None:
            stacks.pop(id(transaction), None)

    # -- rows ------------------------------------------------------------------------

    def _record(self, session: Any, changes: list[_Change]) -> None:
        session = _sync(session)
        transaction = session.get_nested_transaction() or session.get_transaction()
        if transaction is None:
            raise RuntimeError("ciuf: changes recorded outside a transaction would never commit")
        stacks = session.info.setdefault(self._key, {})
        stacks.setdefault(id(transaction), (transaction, []))[1].extend(changes)

    def _table(self, name: str) -> Optional[str]:
        found = self._tables.get(name.lower())
        if found is None:  # a table created in the engine since
            self._tables = {n.lower(): n for n in self.engine.tables()}
            found = self._tables.get(name.lower())
        return found

    def _columns_of(self, table: str) -> set[str]:
        if table not in self._columns:
            self._columns[table] = {c.lower() for c in self.engine.columns(table)}
        return self._columns[table]

    def _row(self, table: str, values: Mapping[str, Any]) -> dict[str, Any]:
        known = self._columns_of(table)
        return {k: _plain(v) for k, v in values.items() if k.lower() in known}

    def _mapped(self, obj: Any) -> Optional[tuple[str, Mapper[Any], Any]]:
        state = inspect(obj)
        mapper = state.mapper
        table = getattr(mapper.local_table, "name", None)
        name = self._table(table) if table else None
        return (name, mapper, state) if name else None

    def _values(self, mapper: Mapper[Any], state: Any, old: bool) -> dict[str, Any]:
        """Column name to value: the current values, or with ``old`` the values the row
        had before this flush (from the attribute history)."""
        out: dict[str, Any] = {}
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            if getattr(column, "table", None) is not mapper.local_table:
                continue
            if old:
                history = state.attrs[prop.key].history
                if history.deleted:
                    value = history.deleted[0]
                elif history.unchanged:
                    value = history.unchanged[0]
                elif history.added:
                    value = history.added[0]
                else:
                    continue
            else:
                value = state.dict.get(prop.key, _MISSING)
                if value is _MISSING:
                    value = getattr(state.obj(), prop.key)  # expired (a server default): load it
            out[column.name] = value
        return out

    def _insert(self, obj: Any, changes: list[_Change]) -> None:
        m = self._mapped(obj)
        if m:
            name, mapper, state = m
            changes.append(("insert", name, self._row(name, self._values(mapper, state, old=False))))

    def _update(self, obj: Any, changes: list[_Change]) -> None:
        m = self._mapped(obj)
        if m:
            name, mapper, state = m
            old = self._row(name, self._values(mapper, state, old=True))
            new = self._row(name, self._values(mapper, state, old=False))
            if old != new:
                changes.append(("update", name, new, old))

    def _delete(self, obj: Any, changes: list[_Change]) -> None:
        m = self._mapped(obj)
        if m:
            name, mapper, state = m
            changes.append(("delete", name, self._row(name, self._values(mapper, state, old=True))))


def _plain(value: Any) -> Any:
    """ORM values ciuf has no type for, as the value the database stores."""
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, (str, int)) else value.name
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _sync(session: Any) -> Session:
    """The sync Session behind an AsyncSession (or the session itself)."""
    sync: Session = getattr(session, "sync_session", session)
    return sync


SessionTarget = Union[Session, "sessionmaker[Any]", "scoped_session[Any]", type, Any]


def track(engine: Engine, session: SessionTarget) -> Tracker:
    """Applies the ORM writes of ``session`` to ``engine`` when they commit.

    ``session`` is a ``sessionmaker`` (every session it makes), a ``Session`` or
    ``AsyncSession``, an ``async_sessionmaker``, a ``scoped_session``, or a Session class
    (every session of that class). Returns the :class:`Tracker`.
    """
    tracker = Tracker(engine)
    try:
        from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    except ImportError:  # pragma: no cover - asyncio extras are part of SQLAlchemy 2
        AsyncSession = async_sessionmaker = None  # type: ignore[assignment,misc]
    if async_sessionmaker is not None and isinstance(session, async_sessionmaker):
        # Sessions of this maker only: give it a sync session class of its own.
        base = session.kw.get("sync_session_class", Session)
        own = type(f"Tracked{base.__name__}", (base,), {})
        session.kw["sync_session_class"] = own
        tracker._listen(own)
    elif AsyncSession is not None and isinstance(session, AsyncSession):
        tracker._listen(session.sync_session)
    elif isinstance(session, (Session, sessionmaker, scoped_session)) or (
        isinstance(session, type) and issubclass(session, Session)
    ):
        tracker._listen(session)
    else:
        raise TypeError(f"track() takes a Session, sessionmaker or AsyncSession, not {type(session).__name__}")
    if not tracker._tables:
        warnings.warn("ciuf.sqlalchemy.track: the engine has no tables yet; nothing will be tracked", stacklevel=2)
    return tracker


def _ciuf_type(column: Any) -> str:
    """The ciuf type of a SQLAlchemy column, or TypeError naming the column."""
    t = column.type
    if isinstance(t, types.Boolean):
        return "BOOLEAN"
    if isinstance(t, types.Integer):
        # Every width as BIGINT: SQLite keeps any integer in any integer column, and a
        # value the database accepted must never be refused here.
        return "BIGINT"
    if isinstance(t, types.Float):
        return "DOUBLE"
    if isinstance(t, types.Numeric):
        if t.precision is not None and t.asdecimal:
            return f"DECIMAL({t.precision},{t.scale or 0})"
        # SQLite's NUMERIC: integers and reals, each value as the database holds it.
        return "NUMERIC"
    if isinstance(t, (types.String, types.Enum, types.Uuid)):
        return "TEXT"
    if isinstance(t, types.DateTime):
        return "TIMESTAMP"
    if isinstance(t, types.Date):
        return "DATE"
    raise TypeError(
        f"column {column.table.name}.{column.name} is {t!r}, which ciuf has no type for;"
        " leave the table out (tables=...) or declare it with engine.execute"
    )


def mirror(
    engine: Engine,
    metadata: Union[MetaData, Iterable[Table]],
    bind: Any = None,
    tables: Optional[Iterable[str]] = None,
) -> list[str]:
    """Declares in ``engine`` the tables of SQLAlchemy ``metadata`` (or a list of
    ``Table``), with their columns, types, primary keys and NOT NULL, and, given
    ``bind`` (a SQLAlchemy Engine or Connection), loads their current rows, one
    transaction per table. ``tables`` limits it to the tables named. Returns the names.

    Call it at start-up, before :func:`track` and before the app serves writes: rows
    written between the load and the start of tracking would be missed.
    """
    all_tables = list(metadata.sorted_tables if isinstance(metadata, MetaData) else metadata)
    wanted = {t.lower() for t in tables} if tables is not None else None
    chosen = [t for t in all_tables if wanted is None or t.name.lower() in wanted]
    have = {t.lower() for t in engine.tables()}
    for table in chosen:
        if table.name.lower() in have:
            continue
        cols = []
        for c in table.columns:
            cols.append(f'"{c.name}" {_ciuf_type(c)}' + ("" if c.nullable or c.primary_key else " NOT NULL"))
        key = [f'"{c.name}"' for c in table.primary_key.columns]
        if key:
            cols.append(f"PRIMARY KEY ({', '.join(key)})")
        engine.execute(f'CREATE TABLE "{table.name}" ({", ".join(cols)})')
    if bind is not None:
        from sqlalchemy.engine import Engine as SqlAlchemyEngine

        conn = bind.connect() if isinstance(bind, SqlAlchemyEngine) else bind
        try:
            for table in chosen:
                rows = [{k: _plain(v) for k, v in r.items()} for r in conn.execute(select(table)).mappings()]
                engine.insert_many(table.name, rows)
        finally:
            if conn is not bind:
                conn.close()
    return [t.name for t in chosen]
