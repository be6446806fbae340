"""Writes a .meta file for every asset of the package that lacks one (Unity skips files in an
immutable package without a .meta). GUIDs are derived from the path, so reruns are stable."""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent.parent

FOLDER = "fileFormatVersion: 2\nguid: {guid}\nfolderAsset: yes\nDefaultImporter:\n  externalObjects: {{}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
SCRIPT = "fileFormatVersion: 2\nguid: {guid}\nMonoImporter:\n  externalObjects: {{}}\n  serializedVersion: 2\n  defaultReferences: []\n  executionOrder: 0\n  icon: {{instanceID: 0}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
ASMDEF = "fileFormatVersion: 2\nguid: {guid}\nAssemblyDefinitionImporter:\n  externalObjects: {{}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
TEXT = "fileFormatVersion: 2\nguid: {guid}\nTextScriptImporter:\n  externalObjects: {{}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
PACKAGE_MANIFEST = "fileFormatVersion: 2\nguid: {guid}\nPackageManifestImporter:\n  externalObjects: {{}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"


def _template(path: Path) -> str:
    if path.is_dir():
        return FOLDER
    if path.name == "package.json":
        return PACKAGE_MANIFEST
    return {".cs": SCRIPT, ".asmdef": ASMDEF}.get(path.suffix, TEXT)


def is_asset(path: Path) -> bool:
    relative = path.relative_to(PACKAGE)
    return path.suffix != ".meta" and not any(p.endswith("~") or p.startswith(".") for p in relative.parts)


def main() -> None:
    for path in sorted(PACKAGE.rglob("*")):
        meta = path.with_name(path.name + ".meta")
        if not is_asset(path) or meta.exists():
            continue
        guid = hashlib.md5(("npc-engine-unity/" + path.relative_to(PACKAGE).as_posix()).encode()).hexdigest()
        meta.write_text(_template(path).format(guid=guid))
        print("wrote", meta.relative_to(PACKAGE))


if __name__ == "__main__":
    main()
