"""fwtui.mailbox: engine events reach the UI thread complete and in order, with few wake-ups."""

import threading

from fwtui.mailbox import EventMailbox
from tests.dashboard_script import eval_at, run_started, step


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def mailbox_with(clock: Clock) -> tuple[EventMailbox, list[int]]:
    wakes: list[int] = []
    return EventMailbox(lambda: wakes.append(1), step_seconds=0.5, clock=clock), wakes


def test_a_step_stream_wakes_the_ui_at_most_twice_a_second_and_loses_nothing():
    clock = Clock()
    mailbox, wakes = mailbox_with(clock)
    taken, wakes_seen = [], 0
    for i in range(1, 221):  # 22 Steps a second for 10 s; the UI takes what waits each time it is woken
        clock.now += 1 / 22
        mailbox.put(step(i))
        if len(wakes) > wakes_seen:
            wakes_seen = len(wakes)
            taken.extend(mailbox.take())
    taken.extend(mailbox.take())  # the app's collection timer
    assert [e.iter for e in taken] == list(range(1, 221))
    assert 15 <= len(wakes) <= 21  # one wake-up per half second, not 220


def test_anything_but_a_step_wakes_the_ui_at_once_and_keeps_the_order():
    clock = Clock()
    mailbox, wakes = mailbox_with(clock)
    mailbox.put(run_started())
    assert len(wakes) == 1
    mailbox.take()
    mailbox.put(step(10))  # soon after the last wake-up: waits
    clock.now += 0.1
    mailbox.put(step(20))
    assert len(wakes) == 1 and len(mailbox) == 2
    mailbox.put(eval_at(20))  # an eval is news
    assert len(wakes) == 2
    assert [type(e).__name__ for e in mailbox.take()] == ["Step", "Step", "Eval"]


def test_no_second_wake_up_while_one_is_on_its_way():
    clock = Clock()
    mailbox, wakes = mailbox_with(clock)
    mailbox.put(run_started())
    mailbox.put(eval_at(0))  # the first wake-up has not been taken: it will carry this one too
    assert len(wakes) == 1
    assert len(mailbox.take()) == 2
    mailbox.put(eval_at(10))  # taken: the next event wakes the UI again
    assert len(wakes) == 2


def test_events_from_another_thread_all_arrive_in_order():
    mailbox = EventMailbox(lambda: None)
    taken: list = []
    done = threading.Event()

    def engine() -> None:
        for i in range(20_000):
            mailbox.put(step(i))
        done.set()

    worker = threading.Thread(target=engine)
    worker.start()
    while not done.is_set():
        taken.extend(mailbox.take())
    worker.join()
    taken.extend(mailbox.take())
    assert [e.iter for e in taken] == list(range(20_000))


def test_a_closed_mailbox_keeps_nothing():
    wakes: list[int] = []
    mailbox = EventMailbox(lambda: wakes.append(1))
    mailbox.put(step(1))
    mailbox.close()  # the app went away; the run goes on
    mailbox.put(eval_at(10))
    assert len(mailbox) == 0 and mailbox.take() == [] and len(wakes) == 1


def test_progress_rides_along_like_a_step():
    """Progress (issue 20: about once a second, between log points) is news of the same kind as a Step: it does
    not wake the UI more often than Steps do."""
    from trainer.observe.events import Progress

    clock = Clock()
    mailbox, wakes = mailbox_with(clock)
    mailbox.put(step(1))
    mailbox.take()
    clock.now += 0.1
    mailbox.put(Progress(iter=2, elapsed_seconds=3.0, eta_seconds=60.0))
    assert len(wakes) == 1  # within half a second of the last wake-up: the collection timer takes it
    clock.now += 0.5
    mailbox.put(Progress(iter=3, elapsed_seconds=4.0, eta_seconds=59.0))
    assert len(wakes) == 2 and [e.iter for e in mailbox.take()] == [2, 3]
