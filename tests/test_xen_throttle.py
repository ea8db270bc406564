"""The ia64 storm rule, walked exactly on a fake clock (mca.c's constants)."""

import pytest

from xenmca.xen.throttle import CmciLine, CmcLine, CpeLine, LeakyBucketLine, Mode, StormRule
from xenmca.xen.throttle_settings import (
    PRESETS,
    ThrottleSettings,
    ThrottleSettingsError,
    load_settings,
)

IA64 = PRESETS["linux-ia64"]


def test_four_interrupts_in_a_second_stay_in_interrupt_mode_the_fifth_switches() -> None:
    line = CmcLine(IA64)
    for i in range(4):
        assert line.on_interrupt(100.0 + i * 0.2) is None
        assert line.mode is Mode.INTERRUPT
    transition = line.on_interrupt(100.9)
    assert transition is not None
    assert (transition.old, transition.new, transition.why) == (
        Mode.INTERRUPT,
        Mode.POLLING,
        "storm",
    )
    assert line.mode is Mode.POLLING
    assert line.interval == 60.0


def test_interrupts_spread_over_more_than_the_window_never_switch() -> None:
    line = CmcLine(IA64)
    for i in range(50):
        assert line.on_interrupt(i * 0.26) is None
    assert line.mode is Mode.INTERRUPT


def test_old_interrupts_fall_out_of_the_window() -> None:
    line = CmcLine(IA64)
    for t in (0.0, 0.1, 0.2, 0.3):
        line.on_interrupt(t)
    # 1.35 s later the first four are outside the 1 s window: count restarts.
    assert line.on_interrupt(1.35) is None
    assert line.mode is Mode.INTERRUPT


def test_cmc_returns_to_interrupt_mode_after_an_empty_poll() -> None:
    line = CmcLine(IA64)
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        line.on_interrupt(t)
    assert line.mode is Mode.POLLING
    assert line.on_poll(found_new=7, now=1.0) is None
    assert line.mode is Mode.POLLING
    back = line.on_poll(found_new=0, now=1.0)
    assert back is not None and back.new is Mode.INTERRUPT and back.why == "empty poll"
    assert line.mode is Mode.INTERRUPT


def test_cmc_after_returning_needs_a_full_new_storm() -> None:
    line = CmcLine(IA64)
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        line.on_interrupt(t)
    line.on_poll(0, now=1.0)
    for t in (0.5, 0.6, 0.7, 0.8):
        assert line.on_interrupt(t) is None
    assert line.on_interrupt(0.9) is not None


def storm(line: CpeLine) -> None:
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        line.on_interrupt(t)
    assert line.mode is Mode.POLLING


def test_cpe_interval_starts_at_min_and_halving_never_goes_below() -> None:
    line = CpeLine(IA64)
    storm(line)
    assert line.interval == 120.0
    for _ in range(5):
        line.on_poll(found_new=3, now=1.0)
        assert line.interval == 120.0
    assert line.mode is Mode.POLLING


def test_cpe_with_a_vector_returns_to_interrupt_mode_at_the_first_empty_poll() -> None:
    """mca.c ia64_mca_cpe_int_caller: no new record and cpe_vector >= 0 -> poll_time =
    MIN_CPE_POLL_INTERVAL, enable_irq, cpe_poll_enabled = 0."""
    line = CpeLine(IA64)
    storm(line)
    line.on_poll(found_new=2, now=1.0)
    transition = line.on_poll(found_new=0, now=1.0)
    assert transition is not None and transition.new is Mode.INTERRUPT
    assert line.mode is Mode.INTERRUPT
    assert line.interval == 120.0


def test_cpe_without_a_vector_doubles_up_to_the_cap_and_halves_on_records() -> None:
    """mca.c ia64_mca_cpe_int_caller: found -> max(MIN, t/2); empty, cpe_vector < 0 ->
    min(MAX, 2t); the line keeps polling."""
    line = CpeLine(ThrottleSettings(cpe_can_interrupt=False))
    assert line.mode is Mode.POLLING
    seen = []
    for _ in range(4):
        line.on_poll(found_new=0, now=1.0)
        seen.append(line.interval)
    # 120 -> 240 -> 480 -> 900 (capped, not 960) -> 900
    assert seen == [240.0, 480.0, 900.0, 900.0]
    assert line.mode is Mode.POLLING
    line.on_poll(2, now=1.0)
    assert line.interval == 450.0
    line.on_poll(2, now=1.0)
    assert line.interval == 225.0
    line.on_poll(2, now=1.0)
    assert line.interval == 120.0
    assert line.on_interrupt(0.0) is None


def test_fast_preset_keeps_the_storm_rule_with_short_intervals() -> None:
    fast = PRESETS["fast"]
    assert (fast.history_length, fast.window) == (5, 1.0)
    assert fast.cmc_poll_interval == 0.1
    assert (fast.cpe_poll_min, fast.cpe_poll_max) == (0.05, 0.5)


def test_settings_file_and_overrides(tmp_path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("preset: fast\ncmc_poll_interval: 0.25\n")
    settings = load_settings("linux-ia64", path, {"cpe_poll_max": 2, "window": None})
    assert settings.cmc_poll_interval == 0.25
    assert settings.cpe_poll_min == 0.05
    assert settings.cpe_poll_max == 2.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"history_length": 1}, "history_length"),
        ({"cpe_poll_min": 10.0, "cpe_poll_max": 1.0}, "cpe_poll_min"),
        ({"window": float("nan")}, "window"),
        ({"bogus": 1}, "bogus"),
        ({"cmc_poll_interval": "fast"}, "cmc_poll_interval"),
    ],
)
def test_bad_settings_name_the_field(overrides, message) -> None:
    with pytest.raises(ThrottleSettingsError, match=message):
        load_settings("linux-ia64", None, overrides)


def test_unknown_preset() -> None:
    with pytest.raises(ThrottleSettingsError, match="unknown throttle preset"):
        load_settings("turbo")


def test_a_settings_file_naming_a_preset_keeps_its_own_values_through_the_parser(
    tmp_path,
) -> None:
    """`serve xen --throttle-settings FILE` with `preset: fast` and `window: 2.0`: the flags
    left unset must not bring the preset's window back (they arrive as None)."""
    from xenmca.cli import build_parser
    from xenmca.xen.command import throttle_from_args

    path = tmp_path / "t.yaml"
    path.write_text("preset: fast\nwindow: 2.0\n")
    argv = ["serve", "xen", "--pcpu", "0=127.0.0.1:1", "--throttle-settings", str(path)]
    settings = throttle_from_args(build_parser(argv).parse_args(argv))
    assert (settings.window, settings.cmc_poll_interval) == (2.0, 0.1)
    argv += ["--storm-window", "3", "--throttle-policy", "x86-cmci"]
    settings = throttle_from_args(build_parser(argv).parse_args(argv))
    assert (settings.window, settings.policy) == (3.0, "x86-cmci")


def cmci(**changes: object) -> CmciLine:
    return CmciLine(ThrottleSettings(**changes))  # type: ignore[arg-type]


def test_cmci_storm_begins_at_five_errors_in_the_history_even_seconds_apart() -> None:
    """mce/threshold.c mce_track_storm: history <<= (delta + HZ) / HZ, |= 1 per error;
    hweight64(history) >= STORM_BEGIN_THRESHOLD starts the storm."""
    line = cmci()
    for t in (0.0, 2.0, 4.0, 6.0):
        assert line.on_interrupt(t) is None
    assert bin(line.history) == "0b1001001001"  # 2 s apart: shifts of (2 + 1), bits 0, 3, 6, 9
    assert line.on_interrupt(8.0) is not None
    assert line.mode is Mode.POLLING


def test_cmci_history_forgets_errors_older_than_64_ticks() -> None:
    line = cmci()
    for t in (0.0, 1.0, 2.0, 3.0):
        line.on_interrupt(t)
    assert line.on_interrupt(70.0) is None  # the four old bits shifted out
    assert line.history == 1


def test_cmci_storm_ends_after_thirty_polls_without_errors() -> None:
    """STORM_END_POLL_THRESHOLD 29: GENMASK_ULL(29, 0) of the history must be clear."""
    line = cmci()
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        line.on_interrupt(t)
    assert line.mode is Mode.POLLING
    line.on_poll(3, now=1.0)
    for i in range(29):
        assert line.on_poll(0, now=2.0 + i) is None
    back = line.on_poll(0, now=40.0)
    assert back is not None and back.new is Mode.INTERRUPT
    assert line.history == 0


def test_leaky_bucket_overflows_at_capacity_and_leaks_per_agetime() -> None:
    """mcelog leaky-bucket.c __bucket_account: count >= capacity overflows (and empties);
    bucket_age takes capacity * (diff / agetime) off once a whole agetime passed."""
    line = LeakyBucketLine(ThrottleSettings(bucket_capacity=5, bucket_agetime=1.0))
    for t in (0.0, 0.2, 0.4, 0.6):
        assert line.on_interrupt(t) is None
    assert line.count == 4
    assert line.on_interrupt(0.8) is not None  # the fifth within the agetime
    assert (line.mode, line.count) == (Mode.POLLING, 0)
    assert line.on_poll(2, now=0.9) is None
    back = line.on_poll(0, now=1.0)
    assert back is not None and back.new is Mode.INTERRUPT
    slow = LeakyBucketLine(ThrottleSettings(bucket_capacity=5, bucket_agetime=1.0))
    for t in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5):  # 2 per s against a leak of 5 per s
        assert slow.on_interrupt(t) is None


def test_storm_rule_names_its_policy_and_refuses_unknown_ones() -> None:
    assert isinstance(StormRule(ThrottleSettings(policy="x86-cmci")).new_line(True), CmciLine)
    assert isinstance(StormRule(ThrottleSettings()).new_line(True), CpeLine)
    with pytest.raises(ThrottleSettingsError, match="policy"):
        load_settings("fast", None, {"policy": "random"})
