"""The configuration schema, the shipped Mexican operation and scenarios, and error messages."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from rich.console import Console

import configs
from configs import Operation, Scenario, describe, load, load_operation, load_scenario
from configs.schema import (
    AgentSchedule,
    CallingWindow,
    Carrier,
    Distribution,
    within_calling_hours,
)
from smartdial.errors import ConfigError

CONFIGS = Path(configs.__file__).parent
OPERATION = CONFIGS / "mx-operation.yaml"
SCENARIO = CONFIGS / "scenarios" / "mx-collections.yaml"
SMALL = CONFIGS / "scenarios" / "small.yaml"

# ISO 3166-2:MX
MX_STATES = (
    "AGU", "BCN", "BCS", "CAM", "CHP", "CHH", "CMX", "COA", "COL", "DUR", "GUA",
    "GRO", "HID", "JAL", "MEX", "MIC", "MOR", "NAY", "NLE", "OAX", "PUE", "QUE",
    "ROO", "SLP", "SIN", "SON", "TAB", "TAM", "TLA", "VER", "YUC", "ZAC",
)  # fmt: skip
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FAST_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
BORDER_REGIONS = ("CHH-JRZ", "CHH-OJI", "TAM-BRD", "COA-BRD", "NLE-BRD")


@pytest.fixture(scope="module")
def operation() -> Operation:
    return load_operation(OPERATION)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(SCENARIO)


def raw(path: Path) -> dict:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=FAST_LOADER)


def write(tmp_path: Path, name: str, data: dict | str) -> Path:
    path = tmp_path / name
    text = data if isinstance(data, str) else yaml.dump(data, Dumper=FAST_DUMPER, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def broken_operation(tmp_path: Path, edit) -> Path:
    """The shipped operation with `edit(data)` applied, written to tmp_path/op.yaml."""
    data = raw(OPERATION)
    edit(data)
    return write(tmp_path, "op.yaml", data)


def broken_scenario(tmp_path: Path, edit) -> Path:
    """The shipped scenario, pointing at the shipped operation, with `edit(data)` applied."""
    data = raw(SCENARIO)
    data["operation"] = os.path.relpath(OPERATION, tmp_path)
    edit(data)
    return write(tmp_path, "sc.yaml", data)


def config_error(path: Path, loader=load) -> str:
    with pytest.raises(ConfigError) as info:
        loader(path)
    return str(info.value)


# -- the shipped files ----------------------------------------------------------------------


def test_shipped_operation_loads(operation):
    assert operation.name == "mx-cobranza"
    assert len(operation.carriers) >= 6
    assert len(operation.products) >= 3
    assert operation.campaign("cobranza-temprana").timezone == "America/Mexico_City"


def test_shipped_scenarios_load_with_their_operation(scenario):
    assert isinstance(scenario, Scenario)
    assert scenario.date == dt.date(2026, 11, 23) and scenario.date.weekday() == 0
    assert scenario.portfolio.leads == 400_000
    assert scenario.campaign_config.name == "cobranza-temprana"
    # The shipped day runs the whole product by default.
    assert scenario.policy == scenario.policies["smartdial"]
    assert (scenario.policy.pacing, scenario.policy.routing, scenario.policy.leads) == (
        "predictive", "optimizer", "value")
    kinds = {i.kind for i in scenario.truth.incidents}
    assert kinds == {"answer_rate", "outage", "agents_logoff"}


def test_small_scenario_is_small_and_uses_the_default_policies():
    small = load(SMALL)
    assert isinstance(small, Scenario)
    assert small.portfolio.leads == 20_000
    agents = small.campaign_config.agents
    assert agents.agents_at(dt.time(10)) == 20
    assert agents.agent_hours() == pytest.approx(20 * 4)
    assert set(small.policies) == {
        "baseline", "progressive", "ratio", "poisson", "cheapest", "predictive", "optimizer",
        "oracle", "smartdial",
    }


def test_load_tells_an_operation_from_a_scenario():
    assert isinstance(load(OPERATION), Operation)
    assert isinstance(load(SCENARIO), Scenario)


def test_shipped_campaign_averages_about_300_agents_over_ten_hours(operation):
    agents = operation.campaign("cobranza-temprana").agents
    assert (agents.start, agents.end) == (dt.time(8), dt.time(18))
    assert agents.agent_hours() / 10 == pytest.approx(300, rel=0.05)


def test_every_mexican_state_is_a_region(operation):
    codes = {r.code for r in operation.regions}
    assert len(MX_STATES) == 32
    assert set(MX_STATES) <= codes


def test_border_regions_follow_us_daylight_saving_time(operation):
    def offsets(zone: str) -> tuple[dt.timedelta, dt.timedelta]:
        tz = zoneinfo.ZoneInfo(zone)
        jan = dt.datetime(2026, 1, 15, 12, tzinfo=tz).utcoffset()
        jul = dt.datetime(2026, 7, 15, 12, tzinfo=tz).utcoffset()
        return jan, jul

    for code in BORDER_REGIONS:
        jan, jul = offsets(operation.region(code).timezone)
        assert jul != jan, code
    jan, jul = offsets(operation.region("CMX").timezone)
    assert jan == jul == dt.timedelta(hours=-6)


def test_interior_regions_have_no_daylight_saving_time(operation):
    for code in MX_STATES:
        if code == "BCN":  # Tijuana keeps US DST by law
            continue
        tz = zoneinfo.ZoneInfo(operation.region(code).timezone)
        jan = dt.datetime(2026, 1, 15, 12, tzinfo=tz).utcoffset()
        jul = dt.datetime(2026, 7, 15, 12, tzinfo=tz).utcoffset()
        assert jan == jul, code


def test_shipped_scenario_weights_every_region_and_names_only_known_things(scenario):
    weights = scenario.portfolio.region_weights
    assert weights is not None
    assert set(weights) == {r.code for r in scenario.operation.regions}
    assert sum(weights.values()) == pytest.approx(126_000, rel=0.01)  # INEGI 2020: 126.0 M


def test_describe_summarises_carriers_regions_products_and_campaign(scenario):
    console = Console(width=200, record=True)
    for table in describe(scenario):
        console.print(table)
    text = console.export_text()
    for needle in ("telcel-direct", "America/Cancun", "auto_loan", "cobranza-temprana", "400,000"):
        assert needle in text
    assert len(describe(scenario.operation)) < len(describe(scenario))


# -- error messages -------------------------------------------------------------------------


def test_negative_cps_names_file_field_and_problem(tmp_path):
    def edit(d):
        d["carriers"][2]["cps"] = -5

    message = config_error(broken_operation(tmp_path, edit))
    assert message.startswith(f"{os.path.normpath(tmp_path / 'op.yaml')}: ")
    assert "carriers[2] (midtier-a).cps: Input should be greater than 0 (got -5)" in message


def test_every_validation_error_is_reported_one_per_line(tmp_path):
    def edit(d):
        d["carriers"][0]["channels"] = 0
        d["carriers"][1]["cost_per_minute_mxn"] = -1
        d["products"][0]["contact_value_mxn"] = 0

    lines = config_error(broken_operation(tmp_path, edit)).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(os.path.normpath(tmp_path / "op.yaml")) for line in lines)
    assert any("carriers[0] (telcel-direct).channels" in line for line in lines)
    assert any("carriers[1] (tier1-mx).cost_per_minute_mxn" in line for line in lines)
    assert any("products[0] (credit_card).contact_value_mxn" in line for line in lines)


def test_unknown_product_in_campaign_is_named_with_its_path(tmp_path):
    def edit(d):
        d["campaigns"][0]["products"].append("mortgage")

    message = config_error(broken_operation(tmp_path, edit))
    assert "campaigns[0] (cobranza-temprana).products[4]: unknown product 'mortgage'" in message


def test_bad_timezone_is_rejected_with_the_region_path(tmp_path):
    def edit(d):
        d["regions"][6]["timezone"] = "America/Ciudad_de_Mexico"

    message = config_error(broken_operation(tmp_path, edit))
    assert "regions[6] (CMX).timezone: unknown IANA time zone 'America/Ciudad_de_Mexico'" in message


def test_unknown_carrier_in_coverage_and_duplicate_names_are_reported(tmp_path):
    def edit(d):
        d["carriers"][5]["coverage"]["regions"].append("XYZ")
        d["carriers"][3]["name"] = "midtier-a"

    message = config_error(broken_operation(tmp_path, edit))
    assert "carriers: name 'midtier-a' appears more than once" in message
    assert "carriers[5] (regional-norte).coverage.regions[14]: unknown region 'XYZ'" in message


def test_minimum_shares_above_one_are_rejected(tmp_path):
    def edit(d):
        for c in d["carriers"]:
            c["min_share"] = 0.2
            c["max_share"] = 1.0

    assert "min_share of enabled carriers sums to 1.2 > 1" in config_error(
        broken_operation(tmp_path, edit)
    )


def test_a_daily_budget_must_be_positive_and_is_read_when_given(tmp_path):
    def edit(d):
        d["campaigns"][0]["daily_budget_mxn"] = 0

    message = config_error(broken_operation(tmp_path, edit))
    assert "campaigns[0] (cobranza-temprana).daily_budget_mxn: Input should be greater than 0" \
        in message

    def edit(d):
        d["campaigns"][0]["daily_budget_mxn"] = 21_500

    op = load_operation(broken_operation(tmp_path, edit))
    assert op.campaigns[0].daily_budget_mxn == 21_500
    assert op.campaigns[1].daily_budget_mxn is None


def test_an_operation_without_enabled_carriers_is_rejected(tmp_path):
    def edit(d):
        for c in d["carriers"]:
            c["enabled"] = False

    assert "carriers: no enabled carrier" in config_error(broken_operation(tmp_path, edit))


def test_unquoted_clock_time_is_still_read_as_a_clock_time(tmp_path):
    # YAML 1.1 would read 17:00 as 1020 (base 60); the loader keeps it a clock time.
    text = OPERATION.read_text(encoding="utf-8").replace('end: "18:00"', "end: 18:00")
    op = load_operation(write(tmp_path, "op.yaml", text))
    assert op.campaign("cobranza-temprana").agents.end == dt.time(18)


def test_numeric_clock_time_is_rejected_rather_than_read_as_seconds(tmp_path):
    def edit(d):
        d["calling_hours"][0]["start"] = 25200

    message = config_error(broken_operation(tmp_path, edit))
    assert "calling_hours[0].start: expected a clock time 'HH:MM'" in message


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "op.yaml", "name: x\ncarriers:\n  - name: a\n   cps: 3\n")
    message = config_error(path)
    assert message.startswith(f"{os.path.normpath(path)}: line 4")
    assert "YAML syntax error" in message


def test_duplicate_yaml_key_is_an_error_with_its_line(tmp_path):
    path = write(tmp_path, "op.yaml", "name: x\ncurrency: MXN\nname: y\n")
    message = config_error(path)
    assert "line 3" in message and "duplicate key 'name'" in message


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.yaml"
    assert config_error(path) == f"{os.path.normpath(path)}: file not found"


def test_scenario_with_missing_operation_file_names_both_files(tmp_path):
    path = broken_scenario(tmp_path, lambda d: d.update(operation="missing-op.yaml"))
    message = config_error(path)
    assert message.startswith(f"{os.path.normpath(path)}: operation: ")
    assert os.path.normpath(tmp_path / "missing-op.yaml") in message


def test_error_inside_the_referenced_operation_names_the_operation_file(tmp_path):
    op = broken_operation(tmp_path, lambda d: d["carriers"][0].update(cps=0))
    path = broken_scenario(tmp_path, lambda d: d.update(operation=op.name))
    message = config_error(path)
    assert message.startswith(f"{os.path.normpath(op)}: carriers[0] (telcel-direct).cps")


def test_unknown_carrier_in_incident_names_scenario_field(tmp_path):
    def edit(d):
        d["truth"]["incidents"][1]["carrier"] = "ghost-trunk"

    path = broken_scenario(tmp_path, edit)
    message = config_error(path)
    assert (
        f"{os.path.normpath(path)}: truth.incidents[1] (outage).carrier: "
        "unknown carrier 'ghost-trunk'"
    ) in message


def test_outage_without_duration_or_carrier_is_rejected(tmp_path):
    def edit(d):
        d["truth"]["incidents"][1] = {"kind": "outage", "at": "11:00"}

    message = config_error(broken_scenario(tmp_path, edit))
    assert "truth.incidents[1] (outage).carrier: a outage incident must name a carrier" in message
    assert "truth.incidents[1] (outage).duration_min: an outage must give duration_min" in message


def test_contact_by_hour_needs_24_values_per_product(tmp_path):
    def edit(d):
        d["truth"]["contact_by_hour"]["credit_card"] = [0.1] * 23
        d["truth"]["contact_by_hour"]["auto_loan"][7] = 1.5

    message = config_error(broken_scenario(tmp_path, edit))
    assert "truth.contact_by_hour.credit_card: needs 24 hourly values, got 23" in message
    assert "truth.contact_by_hour.auto_loan[7]: probability 1.5 is outside [0, 1]" in message


def test_contact_by_hour_must_cover_every_campaign_product(tmp_path):
    message = config_error(
        broken_scenario(tmp_path, lambda d: d["truth"]["contact_by_hour"].pop("auto_loan"))
    )
    assert "truth.contact_by_hour: missing campaign product 'auto_loan'" in message


def test_scenario_mixes_must_name_known_things(tmp_path):
    def edit(d):
        d["portfolio"]["network_mix"]["bell"] = 0.1
        d["portfolio"]["region_weights"]["XX"] = 10
        d["truth"]["carrier_quality"]["lcr-grey"]["vodafone"] = 0.5
        d["campaign"] = "cobranza-tardia"

    message = config_error(broken_scenario(tmp_path, edit))
    assert "portfolio.network_mix.bell: unknown network 'bell'" in message
    assert "portfolio.region_weights.XX: unknown region 'XX'" in message
    assert "truth.carrier_quality.lcr-grey.vodafone: unknown network 'vodafone'" in message
    assert "campaign: unknown campaign 'cobranza-tardia'" in message


def test_default_policy_must_be_one_of_the_policies(tmp_path):
    message = config_error(broken_scenario(tmp_path, lambda d: d.update(default_policy="magic")))
    assert "default_policy: 'magic' is not one of the policies" in message


def test_an_operation_file_given_to_load_scenario_is_reported(tmp_path):
    message = config_error(OPERATION, load_scenario)
    assert "truth: Field required" in message


# -- schema behaviour -----------------------------------------------------------------------


def test_agent_schedule_is_piecewise_constant_until_end():
    schedule = AgentSchedule(
        timezone="America/Mexico_City",
        end="18:00",
        slots=[{"start": "08:00", "agents": 10}, {"start": "13:00", "agents": 4}],
    )
    assert schedule.start == dt.time(8)
    assert schedule.agents_at(dt.time(7, 59)) == 0
    assert schedule.agents_at(dt.time(8)) == 10
    assert schedule.agents_at(dt.time(12, 59, 59)) == 10
    assert schedule.agents_at(dt.time(13)) == 4
    assert schedule.agents_at(dt.time(17, 59)) == 4
    assert schedule.agents_at(dt.time(18)) == 0
    assert schedule.agent_hours() == pytest.approx(10 * 5 + 4 * 5)


def test_agent_schedule_slots_must_increase_and_precede_end():
    with pytest.raises(ValidationError, match=r"slots\[1\]\.start"):
        AgentSchedule(
            timezone="America/Mexico_City",
            end="18:00",
            slots=[{"start": "09:00", "agents": 1}, {"start": "09:00", "agents": 2}],
        )
    with pytest.raises(ValidationError, match="end"):
        AgentSchedule(
            timezone="America/Mexico_City", end="09:00", slots=[{"start": "09:00", "agents": 1}]
        )


def test_region_without_calling_hours_uses_the_operation_default(operation, tmp_path):
    assert operation.region_calling_hours("CMX") == operation.calling_hours

    def edit(d):
        d["regions"][6]["calling_hours"] = [{"start": "08:00", "end": "21:00"}]

    op = load_operation(broken_operation(tmp_path, edit))
    own = op.region_calling_hours(op.region("CMX"))
    assert own == (CallingWindow(start="08:00", end="21:00"),)
    assert own[0].days == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    assert op.region_calling_hours("JAL") == op.calling_hours


def test_calling_hours_are_local_and_shorter_on_sunday(operation):
    hours = operation.calling_hours
    monday = dt.datetime(2026, 11, 23)
    sunday = dt.datetime(2026, 11, 22)
    assert not within_calling_hours(hours, monday.replace(hour=6, minute=59))
    assert within_calling_hours(hours, monday.replace(hour=7))
    assert within_calling_hours(hours, monday.replace(hour=21, minute=59))
    assert not within_calling_hours(hours, monday.replace(hour=22))
    assert not within_calling_hours(hours, sunday.replace(hour=8))
    assert within_calling_hours(hours, sunday.replace(hour=9))


def test_calling_window_must_start_before_it_ends():
    with pytest.raises(ValidationError, match="must be before end"):
        CallingWindow(start="22:00", end="07:00")


@pytest.mark.parametrize("kind", ["lognormal", "gamma"])
def test_lognormal_and_gamma_distributions_require_sd(kind):
    with pytest.raises(ValidationError, match="needs sd_s > 0"):
        Distribution(kind=kind, mean_s=10)
    Distribution(kind=kind, mean_s=10, sd_s=3)


def test_exponential_and_fixed_distributions_need_no_sd():
    assert Distribution(kind="exponential", mean_s=10).sd_s == 0
    assert Distribution(kind="fixed", mean_s=2).sample(np.random.default_rng(0), 3).tolist() == [
        2.0,
        2.0,
        2.0,
    ]


@pytest.mark.parametrize("kind", ["exponential", "lognormal", "gamma"])
def test_distribution_samples_have_the_configured_mean(kind):
    d = Distribution(kind=kind, mean_s=160, sd_s=110)
    x = d.sample(np.random.default_rng(1), 200_000)
    assert x.mean() == pytest.approx(160, rel=0.02)
    if kind != "exponential":
        assert x.std() == pytest.approx(110, rel=0.05)


def test_dial_string_must_contain_the_number_placeholder():
    with pytest.raises(ValidationError, match=r"must contain '\{number\}'"):
        Carrier(name="a", dial_string="PJSIP/trunk-a", channels=1, cps=1, cost_per_minute_mxn=0)


def test_carrier_billing_rounds_up_to_the_increment(operation):
    tier1 = operation.carrier("tier1-mx")  # 30/6 at 0.22 MXN/min
    assert tier1.billed_seconds(0) == 0
    assert tier1.billed_seconds(5) == 30
    assert tier1.billed_seconds(31) == 36
    midtier = operation.carrier("midtier-a")  # 60/60
    assert midtier.billed_seconds(61) == 120
    grey = operation.carrier("lcr-grey")  # 60/60 at 0.06 MXN/min plus 0.02 per attempt
    assert grey.call_cost_mxn(0) == pytest.approx(0.02)
    assert grey.call_cost_mxn(90) == pytest.approx(0.02 + 2 * 0.06)


def test_carrier_coverage_restricts_networks_and_regions(operation):
    assert operation.carrier("telcel-direct").coverage.covers("CMX", "telcel")
    assert not operation.carrier("telcel-direct").coverage.covers("CMX", "att")
    assert operation.carrier("regional-norte").coverage.covers("TAM-BRD", "movistar")
    assert not operation.carrier("regional-norte").coverage.covers("YUC", "movistar")
    assert operation.uncovered() == []


def test_min_share_cannot_exceed_max_share():
    with pytest.raises(ValidationError, match=r"min_share 0\.5 exceeds max_share 0\.2"):
        Carrier(
            name="a",
            dial_string="PJSIP/{number}@a",
            channels=1,
            cps=1,
            cost_per_minute_mxn=0,
            min_share=0.5,
            max_share=0.2,
        )


def test_models_are_frozen(operation):
    with pytest.raises(ValidationError):
        operation.carriers[0].cps = 99


def test_lookups_by_name(operation):
    assert operation.carriers[operation.carrier_index("lcr-grey")].name == "lcr-grey"
    assert operation.regions[operation.region_index("ROO")].timezone == "America/Cancun"
    with pytest.raises(KeyError):
        operation.campaign("nope")


def test_dnc_file_resolves_relative_to_the_operation_file(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "dnc.txt").write_text("# REPEP export\n5512345678\n\n5587654321\n")

    def edit(d):
        d["campaigns"][0]["dnc_file"] = "lists/dnc.txt"

    op = load_operation(broken_operation(tmp_path, edit))
    campaign = op.campaign("cobranza-temprana")
    assert campaign.dnc_file == str((tmp_path / "lists" / "dnc.txt").resolve())
    assert campaign.dnc_numbers() == {"5512345678", "5587654321"}


def test_missing_dnc_file_is_a_config_error(tmp_path):
    def edit(d):
        d["campaigns"][0]["dnc_file"] = "lists/absent.txt"

    message = config_error(broken_operation(tmp_path, edit))
    assert "campaigns[0] (cobranza-temprana).dnc_file: DNC file not found" in message
