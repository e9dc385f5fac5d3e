"""Bad options end in a clear error naming the option (exit status 2), never a traceback or a silent default."""

from __future__ import annotations

import pytest

from selfinterp.cli import main

from conftest import MODEL, SHARED_DATA

LONG = "m" * 300


@pytest.mark.parametrize("argv, says", [
    (["study", "--seed", "-1"], "argument --seed: must be an integer in [0,"),
    (["power", "--seed", "-5"], "argument --seed: must be an integer in [0,"),
    (["study", "--calibration", "{tmp}"], "argument --calibration: {tmp} is a directory; expected a file"),
    (["power", "--prices", "{tmp}"], "argument --prices: {tmp} is a directory; expected a file"),
    (["study", "--out", "{file}"], "argument --out: {file} is a file; expected a directory"),
    (["power", "--out", "{file}"], "argument --out: {file} is a file; expected a directory"),
    (["calibrate", str(SHARED_DATA), "--model", MODEL, "-o", "{tmp}"], "argument -o/--output: {tmp} is a directory"),
    (["replicate", str(SHARED_DATA), "--model", LONG], "argument --model: expected a model name of 1 to 100"),
    (["study", "--model", "a/b"], "argument --model: expected a model name"),
    (["study", "--contexts", "100000000"], "argument --contexts: must be an integer in [2, 1,000,000]"),
    (["study", "--contexts", "100000", "--choices", "100000"], "needs about 3,576.4 GiB of memory"),
    (["power", "--contexts", "100000", "--choices", "1000000"], "needs about"),
    (["replicate", str(SHARED_DATA), "--model", MODEL, "--calls-per-context", "100000"],
     "argument --calls-per-context: must be an integer in [1, 1,000]"),
    (["power", "--replicates", "1e12"], "argument --replicates: expected an integer, got '1e12'"),
    (["power", "--replicates", "1000000", "--contexts", "1000", "--choices", "1000"],
     "simulates about 1.01e+12 choices and reports, over the limit"),
    (["checkpoints", "{file}", "--n-boot", "1e9"], "argument --n-boot: expected an integer"),
    (["calibrate", str(SHARED_DATA), "--model", MODEL, "-o", "{tmp}/c.toml", "--tiles", "100000"],
     "argument --tiles: must be an integer in [1, 10,000]"),
    (["study", "--contexts", "1000000", "--choices", "1", "--reports", "1", "--n-boot", "1000000"],
     "--n-boot 1,000,000 over 1,000,000 contexts needs about 59,604.6 GiB of memory"),
    (["power", "--workers", "0"], "argument --workers: must be an integer in [1, 4,096], got '0'"),
    (["bench-estimators", "--contexts", "1000000", "--trials", "1000000"], "needs about"),
    (["bench-estimators", "--out", "{tmp}"], "argument --out: {tmp} is a directory"),
    (["bench-estimators", "--trials", ""], "argument --trials: expected comma-separated integers, got ''"),
    (["bench-estimators", "--noise", "0.1,"], "argument --noise: expected comma-separated numbers"),
    (["power", "--contexts", ""], "argument --contexts: expected comma-separated integers"),
    (["power", "--connect-timeout", "5"], "--connect-timeout applies to --scheduler only (it would be ignored)"),
    (["power", "--training-effect", "nan"], "argument --training-effect: expected comma-separated numbers"),
])
def test_bad_options_name_the_option(tmp_path, capsys, argv, says):
    (tmp_path / "f.txt").write_text("x")
    fill = {"tmp": str(tmp_path), "file": str(tmp_path / "f.txt")}
    argv = [a.format(**fill) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says.format(**fill) in err and "Traceback" not in err



def test_calibrate_and_replicate_refuse_sizes_that_would_not_fit_in_memory_saying_the_estimate(tmp_path, capsys, monkeypatch):
    """On a machine of 2 GiB, 10,000 tiles of the paper's 100 contexts (up to 100 choices each, and as many native
    ones) is refused once the files are read, before any simulation, with its estimate."""
    from selfinterp.cli import _args

    monkeypatch.setattr(_args, "memory_bytes", lambda: 2 << 30)
    assert main(["calibrate", str(SHARED_DATA), "--model", MODEL, "-o", str(tmp_path / "c.toml"),
                 "--tiles", "10000"]) == 2
    err = capsys.readouterr().err
    assert ("--tiles 10,000 (a simulation of 1,000,000 contexts x 100 choices x 10 reports, 5 attributes) "
            "needs about 37.3 GiB of memory, this machine has 2.0 GiB") in err and "Traceback" not in err
    assert not (tmp_path / "c.toml").exists()
    # replicate's bootstrap: 200,000 resamples of the paper's 100 contexts
    assert main(["replicate", str(SHARED_DATA), "--model", MODEL, "--n-boot", "200000"]) == 2
    assert "--n-boot 200,000 over 100 contexts needs about 1.2 GiB of memory" in capsys.readouterr().err
    from selfinterp.cli.calibrate import check_sizes

    check_sizes(20, [(100, 100), (100, 100)], 5, 10)  # the default is accepted (about 0.08 GiB)
