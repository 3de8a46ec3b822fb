"""``manage.py usersessions``: list or end a user's sessions from the shell.

    manage.py usersessions list USER_ID
    manage.py usersessions revoke USER_ID --session ID
    manage.py usersessions revoke USER_ID --all [--keep ID]
    manage.py usersessions flash USER_ID --message TEXT [--level LEVEL]

``USER_ID`` is the user's primary key, as ``login()`` stores it in the
session. Each session is named by its id (``UserSession.id``, a one-way
digest of its key: no credential, so ``list`` shows it whole).
``--session`` and ``--keep`` take an id as ``list`` shows it, or the start
of one if only one of the user's sessions starts so; an id that is none of
the user's sessions is an error, and nothing is revoked. ``flash`` shows
``--message`` once in each of the user's sessions (``flash.flash_user()``).

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
from django_prologue_sessions.flash import flash_user
from django_prologue_sessions.user_agents import describe
from django_prologue_sessions.user_sessions import (
    UserSession,
    list_sessions,
    revoke_all,
    revoke_session,
)


class Command(BaseCommand):
    help = "List a user's sessions, end one or all of them, or flash them a message."

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
            choices=["list", "revoke", "flash"],
            help="list: the user's live sessions, most recently seen first; "
            "revoke: end one (--session) or all (--all) of them; flash: show "
            "--message once in each of them.",
        )
        parser.add_argument("user_id", help="The user's primary key.")
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--session",
            metavar="ID",
            help="revoke: the session to end, by its id or the start of it.",
        )
        which.add_argument(
            "--all", action="store_true", help="revoke: all the user's sessions."
        )
        parser.add_argument(
            "--keep",
            metavar="ID",
            help="revoke --all: but this session (its id, or the start of it).",
        )
        parser.add_argument("--message", help="flash: the message to show.")
        parser.add_argument(
            "--level",
            default="info",
            help="flash: the message's level, a name or an integer (info).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action, user_id = options["action"], options["user_id"]
        key, everything, keep = options["session"], options["all"], options["keep"]
        if action != "revoke" and (key is not None or everything or keep is not None):
            raise CommandError("--session, --all and --keep go with revoke.")
        if (action == "flash") != (options["message"] is not None):
            raise CommandError("flash needs --message TEXT, which goes with flash.")
        if action == "revoke":
            if key is None and not everything:
                raise CommandError("revoke needs --session ID or --all.")
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
                self.show(user_id)
            elif action == "flash":
                self.flash(user_id, options["message"], options["level"])
            elif everything:
                self.revoke_all(user_id, keep)
            else:
                self.revoke_one(user_id, key)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc

    def show(self, user_id: str) -> None:
        sessions = list_sessions(user_id)
        if not sessions:
            self.stdout.write(f"User {user_id!r} has no sessions.")
            return
        # With activity recorded (PROLOGUE_SESSIONS_ACTIVITY), where each
        # session was last seen from too.
        recorded = any(s.activity is not None for s in sessions)
        header = ("ID", "CREATED (UTC)", "LAST SEEN (UTC)", "EXPIRES (UTC)")
        rows: list[tuple[str, ...]] = [
            (*header, "LAST IP", "DEVICE") if recorded else header
        ]
        for s in sessions:
            row: tuple[str, ...] = (
                s.id,
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

    def flash(self, user_id: str, message: str, level: str) -> None:
        try:
            count = flash_user(
                user_id, message, int(level) if level.isdigit() else level
            )
        except ValueError as exc:  # an unknown level name
            raise CommandError(str(exc)) from exc
        plural = "" if count == 1 else "s"
        self.stdout.write(f"Flashed {count} session{plural} of user {user_id!r}.")

    def revoke_all(self, user_id: str, keep: str | None) -> None:
        kept, session = "", None
        if keep is not None:
            session = self.find(user_id, keep)
            kept = f", kept {session.id}"
        count = revoke_all(user_id, keep=session)
        plural = "" if count == 1 else "s"
        self.stdout.write(f"Revoked {count} session{plural} of user {user_id!r}{kept}.")

    def revoke_one(self, user_id: str, wanted: str) -> None:
        session = self.find(user_id, wanted)
        if not revoke_session(user_id, session):
            # Ended since find() saw it (a logout, expiry): nothing to revoke.
            raise CommandError(f"User {user_id!r} has no session {wanted!r}.")
        self.stdout.write(f"Revoked session {session.id} of user {user_id!r}.")

    def find(self, user_id: str, wanted: str) -> UserSession:
        """The user's session whose id is or starts with ``wanted``."""
        sessions = list_sessions(user_id)
        matches = [s for s in sessions if s.id == wanted] or [
            s for s in sessions if wanted and s.id.startswith(wanted)
        ]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise CommandError(
                f"{len(matches)} sessions of user {user_id!r} start with "
                f"{wanted!r}; give more of the id."
            )
        raise CommandError(f"User {user_id!r} has no session {wanted!r}.")


def _is_memory_engine() -> bool:
    store = getattr(import_module(settings.SESSION_ENGINE), "SessionStore", None)
    return isinstance(store, type) and issubclass(store, memory.SessionStore)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")
