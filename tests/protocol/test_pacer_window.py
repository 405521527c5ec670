"""The create pacer holds Kie's window even when one create is held up inside Kie."""

from __future__ import annotations

import itertools

from kie.protocol.polling import Pacer


def drive(pacer: Pacer, delays: dict[int, float], creates: int) -> list[tuple[float, float]]:
    """Depart `creates` creates as early as the pacer allows; create k is answered `delays[k]` after
    leaving (0.05 s otherwise). Returns (departure, answer) per create."""
    now, out = 0.0, []
    for k in range(creates):
        while (wait := pacer.depart(now)) > 0:
            now += wait
        answer = now + delays.get(k, 0.05)
        pacer.answered(now, answer)
        out.append((now, answer))
    return out


def worst_window(times: list[tuple[float, float]], count: int, seconds: float) -> int:
    """Most creates Kie could count in one `seconds` window, if each arrived as late as its answer
    while the one `count` later arrived as early as its departure."""
    worst = 0
    for i in range(len(times)):
        latest_arrival = times[i][1]
        inside = sum(1 for dep, _ in times[i + 1 :] if dep < latest_arrival + seconds) + 1
        worst = max(worst, inside)
    return worst


def test_spacing_alone_lets_a_delayed_create_crowd_the_next_window() -> None:
    times = drive(Pacer(0.5), {3: 1.0}, 60)
    assert worst_window(times, 20, 10.0) > 20


def test_the_window_absorbs_a_create_delayed_inside_kie() -> None:
    times = drive(Pacer(0.5, window=(20, 10.0)), {3: 1.0, 30: 2.0}, 60)
    assert worst_window(times, 20, 10.0) <= 20
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.5  # and the spacing still holds


def test_an_unanswered_create_holds_the_window_until_it_is_answered() -> None:
    pacer = Pacer(0.5, window=(2, 1.0))
    assert pacer.depart(0.0) == 0.0
    assert pacer.depart(0.5) == 0.0
    pacer.answered(0.5, 0.55)
    assert pacer.depart(1.0) > 0  # the first is still unanswered: it may reach Kie any moment
    pacer.answered(0.0, 1.0)
    assert pacer.depart(1.0) > 0 and pacer.depart(2.0) == 0.0
