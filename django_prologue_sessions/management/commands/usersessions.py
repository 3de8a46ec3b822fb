"""``manage.py usersessions``: list or end a user's sessions from the shell.

    manage.py usersessions list USER_ID [--full-keys]
    manage.py usersessions revoke USER_ID --session KEY
    manage.py usersessions revoke USER_ID --all [--keep KEY]

``USER_ID`` is the user's primary key, as ``login()`` stores it in the
session. ``--session`` and ``--keep`` take a full key or the start of one,
as ``list`` shows it, if only one of the user's sessions starts so; a key
that is none of the user's sessions is an error, and nothing is revoked.

From the shell it needs the Redis engine: the memory engine's sessions live
in the web server's process, out of reach of this one.
"""

from __future__ import annotations

from datetime import datetime
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_prologue_sessions.backends import memory
from django_prologue_sessions.user_agents import describe
from django_prologue_sessions.user_sessions import (
    list_sessions,
    revoke_all,
    revoke_session,
)

#: How many characters of a key are shown, unless ``list --full-keys``: a
#: session key is a credential, best kept out of terminals and their logs.
SHORT_KEY = 12


class Command(BaseCommand):
    help = "List a user's sessions, or end one or all of them."

    #: Run as ``manage.py usersessions``, in a process of its own (not by
    #: ``call_command()`` in the server's process).
    from_shell = False

    def run_from_argv(self, argv: list[str]) -> None:
        self.from_shell = True
        super().run_from_argv(argv)

    def add_arguments(self, parser: CommandParser) -> None:
        # One parser, not a subparser per action: Django's own options
        # (--settings, -v) then work anywhere on the line.
        parser.add_argument(
            "action",
            choices=["list", "revoke"],
            help="list: the user's live sessions, most recently seen first; "
            "revoke: end one (--session) or all (--all) of them.",
        )
        parser.add_argument("user_id", help="The user's primary key.")
        parser.add_argument(
            "--full-keys",
            action="store_true",
            help=f"list: show whole keys, not their first {SHORT_KEY} characters.",
        )
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--session",
            metavar="KEY",
            help="revoke: the session to end, by its key or the start of it.",
        )
        which.add_argument(
            "--all", action="store_true", help="revoke: all the user's sessions."
        )
        parser.add_argument(
            "--keep",
            metavar="KEY",
            help="revoke --all: but this session (its key, or the start of it).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action, user_id = options["action"], options["user_id"]
        key, everything, keep = options["session"], options["all"], options["keep"]
        if action == "list" and (key is not None or everything or keep is not None):
            raise CommandError("--session, --all and --keep go with revoke.")
        if action == "revoke":
            if options["full_keys"]:
                raise CommandError("--full-keys goes with list.")
            if key is None and not everything:
                raise CommandError("revoke needs --session KEY or --all.")
            if keep is not None and not everything:
                raise CommandError("--keep goes with --all.")
        if self.from_shell and _is_memory_engine():
            raise CommandError(
                "The memory engine keeps sessions in the memory of the web "
                "server's process: this command, in a process of its own, "
                "cannot see them. Call django_prologue_sessions.user_sessions "
                "from the server's code instead (a view, an admin action), or "
                "use the Redis engine."
            )
        try:
            if action == "list":
                self.show(user_id, options["full_keys"])
            elif everything:
                self.revoke_all(user_id, keep)
            else:
                self.revoke_one(user_id, key)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc

    def show(self, user_id: str, full_keys: bool) -> None:
        sessions = list_sessions(user_id)
        if not sessions:
            self.stdout.write(f"User {user_id!r} has no sessions.")
            return
        # With activity recorded (PROLOGUE_SESSIONS_ACTIVITY), where each
        # session was last seen from too.
        recorded = any(s.activity is not None for s in sessions)
        header = ("KEY", "CREATED (UTC)", "LAST SEEN (UTC)", "EXPIRES (UTC)")
        rows: list[tuple[str, ...]] = [
            (*header, "LAST IP", "DEVICE") if recorded else header
        ]
        for s in sessions:
            row: tuple[str, ...] = (
                s.session_key if full_keys else s.session_key[:SHORT_KEY],
                _when(s.created),
                _when(s.last_seen),
                _when(s.expires),
            )
            if recorded:
                last = s.activity.last if s.activity else None
                ip = (last.ip if last else None) or "-"
                device = describe(last.user_agent) if last else ""
                row += (ip, device or "-")
            rows.append(row)
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = zip(row, widths, strict=True)
            line = "  ".join(cell.ljust(width) for cell, width in cells)
            self.stdout.write(line.rstrip())

    def revoke_all(self, user_id: str, keep: str | None) -> None:
        kept = ""
        if keep is not None:
            keep = self.find(user_id, keep)
            kept = f", kept {keep[:SHORT_KEY]}"
        count = revoke_all(user_id, keep=keep)
        plural = "" if count == 1 else "s"
        self.stdout.write(f"Revoked {count} session{plural} of user {user_id!r}{kept}.")

    def revoke_one(self, user_id: str, key: str) -> None:
        session_key = self.find(user_id, key)
        if not revoke_session(user_id, session_key):
            # Ended since find() saw it (a logout, expiry): nothing to revoke.
            raise CommandError(f"User {user_id!r} has no session {key!r}.")
        self.stdout.write(
            f"Revoked session {session_key[:SHORT_KEY]} of user {user_id!r}."
        )

    def find(self, user_id: str, key: str) -> str:
        """The full key of the user's session that is or starts with ``key``."""
        keys = [s.session_key for s in list_sessions(user_id)]
        if key in keys:
            return key
        matches = [k for k in keys if key and k.startswith(key)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise CommandError(
                f"{len(matches)} sessions of user {user_id!r} start with {key!r}; "
                "give more of the key."
            )
        raise CommandError(f"User {user_id!r} has no session {key!r}.")


def _is_memory_engine() -> bool:
    store = getattr(import_module(settings.SESSION_ENGINE), "SessionStore", None)
    return isinstance(store, type) and issubclass(store, memory.SessionStore)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")
