"""The Lambdas' zips as components/lambda_function.py builds them: the third-party packages in them
are the pinned releases built for the functions' platform, and each handler imports from its
zip plus what the Lambda Python runtime provides, nothing else."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pulumi
import pytest

from components import lambda_function
from components.lambda_function import LAMBDAS, RUNTIME, lambda_code
from llmops import cli

# What the Lambda Python runtime ships besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
FOLDERS = sorted(p.name for p in LAMBDAS.iterdir() if (p / "handler.py").is_file())
AARCH64 = 183  # ELF e_machine


def pinned(folder: str) -> dict[str, str]:
    path = LAMBDAS / folder / "requirements.txt"
    text = path.read_text() if path.exists() else ""
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", text, re.MULTILINE))


def zip_entries(archive: pulumi.AssetArchive) -> dict[str, Path]:
    """Path in the zip -> local file, for every file the archive holds."""
    entries = {}
    for name, item in archive.assets.items():
        path = Path(item.path)
        if path.is_dir():
            entries |= {f"{name}/{f.relative_to(path).as_posix()}": f for f in path.rglob("*") if f.is_file()}
        else:
            entries[name] = path
    return entries


def test_the_aggregator_has_pinned_packages():
    assert pinned("spend_aggregator") == {"msgspec": importlib.metadata.version("msgspec")}


@pytest.mark.parametrize("folder", [f for f in FOLDERS if pinned(f)])
def test_packages_are_the_pinned_releases_built_for_the_lambda_platform(folder):
    entries = zip_entries(lambda_code(folder))
    python = "cp" + RUNTIME.removeprefix("python").replace(".", "")  # python3.13 -> cp313
    for name, version in pinned(folder).items():
        info = f"{name}-{version}.dist-info"
        tags = re.findall(r"^Tag: (\S+)$", entries[f"{info}/WHEEL"].read_text(), re.MULTILINE)
        assert tags and all(t.startswith(f"{python}-") and t.endswith("_aarch64") for t in tags), tags
        # Every file the wheel installed is in the zip; its native modules are AArch64 ELF.
        files = [line.split(",")[0] for line in entries[f"{info}/RECORD"].read_text().splitlines()]
        assert files and set(files) <= set(entries), sorted(set(files) - set(entries))[:5]
        native = [entries[f] for f in files if f.endswith(".so")]
        assert native, f"{name}: no native module (the fast decoder is C)"
        for path in native:
            head = path.read_bytes()[:20]
            assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == AARCH64, path


@pytest.mark.parametrize("folder", FOLDERS)
def test_zip_holds_the_sources_and_no_bytecode(folder):
    """Bytecode caches differ between machines (and Python versions): with them in the zip, a
    deploy from another machine would update the function for nothing."""
    entries = zip_entries(lambda_code(folder))
    sources = {f"{folder}/{p.name}" for p in (LAMBDAS / folder).glob("*.py")}
    assert f"{folder}/handler.py" in sources and sources <= set(entries)
    assert not [e for e in entries if "__pycache__" in e or e.endswith(".pyc")]


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_handler_imports_from_its_zip_and_the_lambda_runtime_alone(folder, tmp_path):
    archive = tmp_path / "code.zip"
    packaged = set()
    with zipfile.ZipFile(archive, "w") as zf:
        for path_in_zip, file in zip_entries(lambda_code(folder)).items():
            top = path_in_zip.split("/")[0]
            if top == folder:
                zf.write(file, path_in_zip)
            elif not top.endswith(".dist-info"):
                packaged.add(top)
    # The zip's packages are built for arm64; this machine imports its own build of the same
    # release instead, next to the runtime's packages, and nothing else from site-packages.
    for name, version in pinned(folder).items():
        assert importlib.metadata.version(name) == version, name
    site = Path(boto3.__file__).parents[1]
    host = tmp_path / "runtime"
    host.mkdir()
    for name in (*RUNTIME_PACKAGES, *packaged):
        source = site / name if (site / name).exists() else site / f"{name}.py"
        (host / source.name).symlink_to(source)
    code = (
        f"import sys, importlib; sys.path[:0] = [{str(archive)!r}, {str(host)!r}]; "
        f"m = importlib.import_module('{folder}.handler'); assert callable(m.handler); "
        "assert not [n for n in sys.modules if n.split('.')[0] in ('llmops', 'lambdas')], 'repo import'"
    )
    # -S: no site-packages, no editable-install hooks: the standard library and sys.path above.
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_unbuilt_or_stale_packages_stop_the_program_with_what_to_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(lambda_function, "LAMBDA_DEPS", tmp_path)
    problem = r"lambdas/spend_aggregator/requirements.txt: .* not built.* run `make lambda-deps`"
    with pytest.raises(pulumi.RunError, match=problem):
        lambda_code("spend_aggregator")
    built = tmp_path / "spend_aggregator"
    built.mkdir()
    (built / "requirements.txt").write_text("msgspec==0.18.0\n")  # built from an older file
    with pytest.raises(pulumi.RunError, match=problem):
        lambda_code("spend_aggregator")
    # The offline plan reports it as a one-line error (exit 2), not a traceback.
    assert cli.main(["plan", "dev", "--build-dir", str(tmp_path / "build")]) == 2
    err = capsys.readouterr().err
    assert re.search(f"^error: dev: {problem}", err) and "Traceback" not in err
