"""``manage.py rearq_worker`` options as the docs show them."""

from __future__ import annotations

import pytest
from django.core.management import load_command_class


def parse(*argv: str) -> dict:
    command = load_command_class("rearq_tasks", "rearq_worker")
    return vars(command.create_parser("manage.py", "rearq_worker").parse_args(list(argv)))


@pytest.mark.parametrize(
    "argv, queues",
    [
        ((), []),
        (("-q", "a", "b"), ["a", "b"]),
        (("-q", "a", "-q", "b"), ["a", "b"]),
        (("--queue", "a", "b", "-q", "c", "--with-timer"), ["a", "b", "c"]),
    ],
)
def test_queues_are_given_after_one_or_several_q(argv, queues) -> None:
    assert parse(*argv)["queue"] == queues


def test_q_without_a_queue_is_an_error() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        parse("-q")
