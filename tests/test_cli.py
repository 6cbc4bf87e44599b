"""The `smartdial` command as a user meets it: exit codes, JSON, reports, errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from smartdial.cli import main

SMALL = str(Path(__file__).resolve().parent.parent / "configs" / "scenarios" / "small.yaml")


def run_json(capsys, *args) -> dict:
    assert main(["sim", "run", SMALL, "--json", "--quiet", "--report", "none", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_sim_run_json_has_every_promised_key(capsys):
    k = run_json(capsys)
    for key in ("attempts", "contacts", "contact_rate", "contacts_per_agent_hour",
                "abandon_rate", "occupancy", "cost", "cost_per_contact", "violations",
                "per_carrier", "per_hour"):
        assert key in k
    assert k["attempts"] > 0 and 0 < k["contacts"] < k["attempts"]
    assert k["violations_total"] == 0


def test_same_seed_gives_identical_kpis_and_another_seed_does_not(capsys):
    a = run_json(capsys, "--seed", "7")
    b = run_json(capsys, "--seed", "7")
    c = run_json(capsys, "--seed", "8")
    assert a == b
    assert a["contacts"] != c["contacts"] or a["attempts"] != c["attempts"]


def test_policy_parts_can_be_chosen_one_by_one(capsys):
    k = run_json(capsys, "--policy", "ratio", "--routing", "cheapest")
    assert k["policy"] == {"pacing": "ratio", "routing": "cheapest", "leads": "oldest"}


def test_report_is_written_with_plots(tmp_path, capsys):
    path = tmp_path / "day.html"
    assert main(["sim", "run", SMALL, "--quiet", "--report", str(path)]) == 0
    page = path.read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "per carrier" in capsys.readouterr().out


def test_unknown_policy_is_a_clear_error(capsys):
    assert main(["sim", "run", SMALL, "--policy", "nope", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown policy 'nope'" in err and "baseline" in err


def test_config_check_names_the_bad_file_field_and_problem(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    src = (Path(SMALL).parent.parent / "mx-operation.yaml").read_text()
    bad.write_text(src.replace("cps: ", "cps: -", 1))
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and ".cps" in err and "greater than 0" in err


def test_config_check_accepts_the_shipped_scenario(capsys):
    assert main(["config", "check", SMALL]) == 0
    assert "OK" in capsys.readouterr().out


def test_help_does_not_import_numba():
    code = "import sys; from smartdial.cli import parser; parser(); print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("flag", ["--pacing", "--routing"])
def test_unknown_policy_part_is_refused_by_the_parser(flag):
    with pytest.raises(SystemExit):
        main(["sim", "run", SMALL, flag, "warp-speed"])


@pytest.mark.parametrize("content", [None, b"not parquet"])
def test_an_unreadable_history_file_is_a_clear_error(capsys, tmp_path, content):
    path = tmp_path / "day.parquet"
    if content is not None:
        path.write_bytes(content)
    rc = main(["sim", "run", SMALL, "--policy", "optimizer", "--history", str(path),
               "--no-oracle", "--quiet", "--report", "none", "--json"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{path}: cannot read outcome history" in err


def test_an_unreadable_checkpoint_is_a_clear_error(capsys, tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"not a checkpoint")
    rc = main(["sim", "run", SMALL, "--policy", "optimizer", "--checkpoint", str(path),
               "--no-oracle", "--quiet", "--report", "none", "--json"])
    assert rc == 2
    assert f"{path}: not a readable contact-model checkpoint" in capsys.readouterr().err


def test_a_checkpoint_for_a_policy_without_the_optimizer_is_refused(capsys, tmp_path):
    rc = main(["sim", "run", SMALL, "--routing", "static", "--checkpoint",
               str(tmp_path / "model.npz"), "--quiet", "--report", "none", "--json"])
    assert rc == 2
    assert "add --routing optimizer" in capsys.readouterr().err
    assert not (tmp_path / "model.npz").exists()


def test_a_budget_is_refused_without_the_optimizer_and_must_be_positive(capsys):
    rc = main(["sim", "run", SMALL, "--routing", "static", "--budget", "1000", "--quiet",
               "--report", "none", "--json"])
    assert rc == 2
    assert "--budget is kept by the optimizer's routing" in capsys.readouterr().err
    for bad in ("0", "-5", "lots", "inf"):
        with pytest.raises(SystemExit) as info:
            main(["sim", "run", SMALL, "--routing", "optimizer", "--budget", bad])
        assert info.value.code == 2
        assert "expected a positive amount" in capsys.readouterr().err


def test_an_optimizer_run_reports_its_budget(capsys):
    k = run_json(capsys, "--routing", "optimizer", "--no-oracle", "--budget", "1e9")
    assert k["budget"] == {"budget_mxn": 1e9, "spent_mxn": k["cost"], "cost_weight": 1.0,
                           "over": False}


def test_a_budget_the_routing_cannot_keep_is_said_so(capsys):
    rc = main(["sim", "run", SMALL, "--routing", "optimizer", "--no-oracle", "--budget", "300",
               "--quiet", "--report", "none"])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert rc == 0
    assert "daily budget: 300 MXN, spent" in out
    assert "at its highest price the last plan still expected to spend more" in out
