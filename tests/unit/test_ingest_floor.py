"""The arithmetic of the PostgreSQL ingest floor benchmark, and the /proc readings it rests on."""

from __future__ import annotations

from bench.cpu import TICK, Sample, Spent, machine_busy, median_of, stat_fields
from bench.ingest_floor_report import Figures, Setting, Verdict, plural, report, verdict_lines

STAT = ("4242 (postgres) S 2187 4242 4242 0 -1 4194560 900 0 0 0 "
        "150 25 0 0 20 0 1 0 1234 123456789 4000 18446744073709551615")


def test_a_stat_line_gives_the_command_its_parent_and_its_cpu_ticks() -> None:
    assert ("postgres", 2187, 175) == stat_fields(STAT)


def test_a_command_name_with_spaces_and_brackets_is_read_whole() -> None:
    line = STAT.replace("(postgres)", "(odd) name)")

    assert ("odd) name", 2187, 175) == stat_fields(line)


def test_the_machine_is_busy_for_all_but_its_idle_and_iowait_time() -> None:
    line = f"cpu  {TICK} 0 {TICK} {100 * TICK} {TICK} 0 0 0 0 0"

    assert 2.0 == machine_busy(line)


def test_a_server_process_counts_from_the_first_sample_it_is_seen_in() -> None:
    before = Sample(1.0, 1.0, {1: 10, 2: 50, 3: 7}, 5.0)
    after = Sample(3.0, 1.5, {1: 10 + TICK, 2: 50, 4: TICK}, 8.0)  # 3 ended, 4 started

    assert Spent(2.0, 0.5, 2.0, 3.0) == after - before


def test_each_figure_has_its_own_median() -> None:
    runs = [Spent(1, 9, 5, 2), Spent(2, 8, 4, 3), Spent(3, 7, 6, 1)]

    assert Spent(2, 8, 5, 2) == median_of(runs)


def test_two_cores_at_fifty_thousand_records_a_second_give_forty_microseconds_a_record() -> None:
    assert 40.0 == Verdict(50_000, 2, 50.0, 40_000).budget_us


def test_the_cores_bound_the_rate_by_the_cpu_each_record_needs() -> None:
    assert 40_000 == Verdict(50_000, 2, 50.0, 60_000).cpu_bound_per_s


def test_one_copy_stream_goes_no_faster_than_the_floor() -> None:
    verdict = Verdict(50_000, 2, 20.0, 45_000)

    assert (100_000, 45_000, False) == (verdict.cpu_bound_per_s, verdict.best_per_s,
                                        verdict.reachable)


def test_a_floor_within_the_budget_and_fast_enough_does_not_rule_the_bar_out() -> None:
    verdict = Verdict(50_000, 2, 30.0, 60_000)

    assert verdict.reachable
    assert "not ruled out" in verdict_lines(verdict, 10.0, 20.0)[-1]


def test_the_arithmetic_is_said_with_its_figures() -> None:
    lines = verdict_lines(Verdict(50_000, 2, 55.0, 38_000), 25.0, 30.0)

    assert "**40.0 µs**" in lines[0]
    assert "= **55.0 µs/record**, 1.38× that budget" in lines[1]
    assert "**36,364 records/s**" in lines[2]
    assert "**out of reach**" in lines[3]


def test_counts_are_said_in_words() -> None:
    assert ["1 repeat", "3 repeats", "2 parsing processes"] == [
        plural(1, "repeat"), plural(3, "repeat"), plural(2, "parsing process")]


def test_the_section_takes_the_floor_from_its_cheaper_way_and_names_the_settings() -> None:
    step = Spent(0.1, 0.01, 0.05, 0.2)
    cheap, dear = Spent(0.25, 0.02, 0.2, 0.5), Spent(0.3, 0.02, 0.3, 0.6)
    floors = {"a": {"COPY persons": step, "in all": dear},
              "b": {"DROP INDEX": step, "CREATE INDEX": step, "in all": cheap}}
    figures = Figures(10_000, {"persons": 10_000, "identities": 30_000, "fragments": 10_000},
                      Spent(2.0, 1.5, 0.5, 3.6), floors, 0.3, ["identities_person"])

    text = report(figures, Setting("cmd", "127.0.0.1:5432", "15.20", {"fsync": "on"}, 1, 3, 2))

    assert "`fsync` = on" in text
    assert "| COPY persons (10,000 rows) | 0.10 | 5.0 | — | — |" in text
    assert "(20.0 µs/record) + parsing alone (30.0 µs/record) = **50.0 µs/record**" in text
