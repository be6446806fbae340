#!/usr/bin/env bash
# Fetches a headless-capable Godot 4 from Debian testing into a private folder, without touching
# the system: Debian bookworm has no Godot 4, and testing's build needs glibc >= 2.38, so the
# package and all its dependencies (glibc included) are downloaded with a private apt
# configuration, unpacked with dpkg-deb -x, and run through that folder's own dynamic loader.
#   bridges/godot/tools/fetch-godot.sh             -> prints the path of a `godot` wrapper script
#   bridges/godot/tools/fetch-godot.sh --template  -> prints the path of Debian's Linux x86_64
#       release export template (godot-template-release), for a preset's custom_template/release
# Cached in $NPC_GODOT_CACHE (default /tmp/npc-godot); a second run only checks the cache.
set -euo pipefail
CACHE="${NPC_GODOT_CACHE:-/tmp/npc-godot}"
SUITE="${NPC_GODOT_SUITE:-testing}"
MIRROR="${NPC_GODOT_MIRROR:-http://deb.debian.org/debian}"
ROOTFS="$CACHE/root"
WRAPPER="$CACHE/godot"
TEMPLATE="$CACHE/template/usr/bin/godot-template-release"
APT="$CACHE/apt"
OPTIONS=(
    -o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=-"
    -o "Dir::Etc::Preferences=-" -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d"
    -o "Dir::State=$APT" -o "Dir::State::Lists=$APT/lists" -o "Dir::State::status=$APT/status"
    -o "Dir::Cache=$APT" -o "Dir::Cache::Archives=$APT/archives"
    -o "APT::Architecture=amd64" -o "APT::Install-Recommends=false" -o "Debug::NoLocking=true"
    # Signatures are still checked; only the Release file's age is not: the mirrors our machines
    # reach can serve a dated snapshot of testing (their own apt.conf.d says the same).
    -o "Acquire::Check-Valid-Until=false" -o "Acquire::Check-Date=false"
)

if [ "${1:-}" = "--template" ]; then
    if [ ! -x "$TEMPLATE" ]; then
        "$0" >/dev/null  # the editor first: it reads the package lists the template comes from
        echo "fetch-godot: downloading the release export template" >&2
        mkdir -p "$APT/download"
        (cd "$APT/download" && apt-get "${OPTIONS[@]}" -o APT::Sandbox::User=root download godot-template-release >/dev/null)
        rm -rf "$CACHE/template"
        dpkg-deb -x "$APT"/download/godot-template-release_*.deb "$CACHE/template"
        rm -rf "$APT/download"
    fi
    echo "$TEMPLATE"
    exit 0
fi

if [ -x "$WRAPPER" ] && "$WRAPPER" --headless --version >/dev/null 2>&1; then
    echo "$WRAPPER"
    exit 0
fi

rm -rf "$APT" "$ROOTFS"
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/etc/preferences.d" "$ROOTFS"
: > "$APT/status"
cat > "$APT/sources.list" <<SOURCES
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main
SOURCES
echo "fetch-godot: reading the $SUITE package lists" >&2
apt-get "${OPTIONS[@]}" update >/dev/null
echo "fetch-godot: downloading godot and its dependencies" >&2
apt-get "${OPTIONS[@]}" install -y --download-only godot >/dev/null
for deb in "$APT"/archives/*.deb; do
    dpkg-deb -x "$deb" "$ROOTFS"
done
LOADER=""
for candidate in "$ROOTFS/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$ROOTFS/lib64/ld-linux-x86-64.so.2"; do
    if [ -z "$LOADER" ] && [ -e "$candidate" ]; then
        LOADER="$candidate"
    fi
done
if [ -z "$LOADER" ]; then
    echo "fetch-godot: the unpacked packages hold no ld-linux-x86-64.so.2" >&2
    exit 1
fi
LIBS="$ROOTFS/usr/lib/x86_64-linux-gnu:$ROOTFS/lib/x86_64-linux-gnu:$ROOTFS/usr/lib/x86_64-linux-gnu/pulseaudio"
cat > "$WRAPPER" <<WRAP
#!/usr/bin/env bash
# Runs the privately unpacked Godot through its own glibc (made by fetch-godot.sh).
exec "$LOADER" --library-path "$LIBS" "$ROOTFS/usr/bin/godot" "\$@"
WRAP
chmod +x "$WRAPPER"
rm -rf "$APT/archives"
"$WRAPPER" --headless --version >&2
echo "$WRAPPER"
