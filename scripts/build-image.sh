#!/bin/bash
# build-image.sh BUILD_DIR OUT.tar: the driftwatch container image (sensor, collector, CLI)
# as an OCI image layout tarball, built without a registry or a docker daemon.
#
#   - the build installed with `DESTDIR=ROOTFS cmake --install BUILD_DIR --prefix /usr --strip`
#     (usr/bin/driftwatch{,-sensor,-collector}, usr/share/driftwatch/rules/*.yaml,
#     etc/driftwatch/*.yaml); left out: the systemd units and make-certs.sh (a shell script
#     that needs openssl), which nothing in the image could run, and the docs;
#   - exactly the shared libraries the three binaries need (`ldd`, each resolved to its real
#     file and stored under the name the loader looks for) and the dynamic loader. glibc 2.36
#     has nss_files and nss_dns inside libc.so.6 (2.34+), so name lookups need no
#     libnss_*.so, only /etc/nsswitch.conf; gRPC resolves with c-ares (a linked library) and
#     reads /etc/hosts and /etc/resolv.conf, which the runtime mounts; nothing here uses iconv
#     (no gconv modules);
#   - /etc/passwd and /etc/group (root, nonroot 65532 as the collector Deployment runs,
#     nobody), /etc/nsswitch.conf, /tmp (1777), the mount points the manifests use
#     (/etc/driftwatch/tls, /var/lib/driftwatch, /run/driftwatch); no shell, no CA bundle
#     (mTLS with the deployment's own CA, from a Secret);
#   - one gzip layer (gzip -n), every entry owned by 0:0 with a fixed mtime (SOURCE_DATE_EPOCH,
#     default 0), sorted by name, fixed modes: the same build gives the same digest;
#   - image config: no Entrypoint (the manifests name the binary: `command:
#     [/usr/bin/driftwatch-sensor]`), Cmd /usr/bin/driftwatch --version, labels
#     org.opencontainers.image.{title,description,version,source};
#   - the tarball: oci-layout, index.json, blobs/sha256/*; index.json names the image with
#     io.containerd.image.name (what `ctr images import` names it by) and
#     org.opencontainers.image.ref.name (the tag, as OCI tools read it).
#
# Name: ghcr.io/driftwatch/driftwatch:<version>, the version from `driftwatch --version`
# (else CMakeCache's CMAKE_PROJECT_VERSION). Env: DW_IMAGE_REPO (ghcr.io/driftwatch/driftwatch),
# DW_IMAGE_TAG (the version), DW_IMAGE_SOURCE (https://github.com/driftwatch/driftwatch),
# SOURCE_DATE_EPOCH (0). DW_ROOTFS_OUT=DIR: stop after step 3 and move the root filesystem to
# DIR (scripts/build-bundle.sh makes the self-contained tarball for hosts without a container
# runtime from it).
# Prints (stdout, KEY=VALUE lines): name, manifest digest, image id (config digest: what
# CRI reports as image_ref for an imported image), layer digest, sizes.
# Needs: cmake, ldd (libc-bin), tar, gzip, sha256sum, python3 (JSON). Not root.
set -euo pipefail

die() { echo "build-image: $*" >&2; exit 1; }
[[ $# == 2 ]] || die "usage: build-image.sh BUILD_DIR OUT.tar"
build=$(cd "$1" && pwd) || die "no build directory $1"
out=$2
case $out in /*) ;; *) out=$PWD/$out ;; esac
[[ -f $build/CMakeCache.txt ]] || die "$build is not a CMake build directory"
for c in cmake ldd tar gzip sha256sum python3; do
    command -v "$c" >/dev/null || die "$c missing"
done

epoch=${SOURCE_DATE_EPOCH:-0}
version=$("$build/cli/driftwatch" --version 2>/dev/null | awk 'NR == 1 { print $NF }') || true
[[ -n $version ]] || version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[[ $version =~ ^[0-9A-Za-z._-]+$ ]] || die "no version (driftwatch --version, CMAKE_PROJECT_VERSION)"
repo=${DW_IMAGE_REPO:-ghcr.io/driftwatch/driftwatch}
tag=${DW_IMAGE_TAG:-$version}
name=$repo:$tag
source_url=${DW_IMAGE_SOURCE:-https://github.com/driftwatch/driftwatch}
case $(uname -m) in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
*) arch=$(uname -m) ;;
esac

stage=$(mktemp -d "${TMPDIR:-/tmp}/dw-build-image.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/rootfs
mkdir -p "$root"

# 1. The build, installed as a package would be.
DESTDIR=$root cmake --install "$build" --prefix /usr --strip >"$stage/install.log" 2>&1 ||
    { cat "$stage/install.log" >&2; die "cmake --install failed"; }
bins=(usr/bin/driftwatch usr/bin/driftwatch-sensor usr/bin/driftwatch-collector)
for b in "${bins[@]}"; do [[ -x $root/$b ]] || die "cmake --install gave no $b"; done
[[ -n $(ls "$root"/usr/share/driftwatch/rules/*.yaml 2>/dev/null) ]] || die "cmake --install gave no rules"
# Not for an image: units (no systemd in it), make-certs.sh (shell + openssl), the docs.
rm -rf "$root/usr/lib/systemd" "$root/usr/share/driftwatch/make-certs.sh" "$root/usr/share/doc"
rmdir "$root/usr/lib" 2>/dev/null || true

# 2. Shared libraries: what ldd resolves for the installed binaries, stored under the path
#    ldd names (Debian's /lib/<triplet> is /usr/lib/<triplet>: usrmerge links below), the
#    file's contents taken from the real file behind the symlinks.
declare -A libs=()
interp=
for b in "${bins[@]}"; do
    # A binary ldd cannot read (e.g. copied while the linker was still writing it) stops here.
    ldd "$root/$b" >"$stage/ldd.out" 2>&1 || die "ldd $b: $(cat "$stage/ldd.out")"
    while read -r line; do
        case $line in
        *"=> not found"*) die "$b: ${line%% *} not found" ;;
        *"=> /"*) p=${line#*=> }; p=${p%% (*}; libs[$p]=1 ;;
        /*) p=${line%% (*}; interp=$p ;;  # the loader, as PT_INTERP names it
        esac
    done <"$stage/ldd.out"
done
[[ -n $interp ]] || die "no dynamic loader in ldd's output"
usr_path() {  # the path inside the image: /lib/... and /lib64/... live under /usr
    case $1 in
    /usr/*) printf '%s\n' "$1" ;;
    /lib/* | /lib64/*) printf '/usr%s\n' "$1" ;;
    *) die "library outside /lib, /lib64, /usr: $1" ;;
    esac
}
for p in "${!libs[@]}"; do
    dest=$root$(usr_path "$p")
    mkdir -p "$(dirname "$dest")"
    cp -L "$p" "$dest"
done
# The loader: its real file beside the libraries, PT_INTERP's path a symlink to it (as on
# Debian: /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2).
real_interp=$(readlink -f "$interp")
mkdir -p "$root$(dirname "$(usr_path "$real_interp")")" "$root$(dirname "$(usr_path "$interp")")"
cp -L "$real_interp" "$root$(usr_path "$real_interp")"
if [[ $(usr_path "$interp") != $(usr_path "$real_interp") ]]; then
    ln -sfn "$(realpath -m --relative-to="$(dirname "$(usr_path "$interp")")" "$(usr_path "$real_interp")")" \
        "$root$(usr_path "$interp")"
fi
ln -s usr/lib "$root/lib"
[[ ! -d $root/usr/lib64 ]] || ln -s usr/lib64 "$root/lib64"
ln -s usr/bin "$root/bin"

# 3. The rest of a minimal root.
mkdir -p "$root"/{etc/driftwatch/tls,var/lib/driftwatch,run/driftwatch,tmp,proc,sys,dev}
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
nogroup:x:65534:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
# Fixed modes: nothing depends on the umask or the build tree's own modes.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$root"/usr/bin/* "$root$(usr_path "$real_interp")"
find "$root/usr/lib" -type f -name '*.so*' -exec chmod 0755 {} +
chmod 1777 "$root/tmp"
chmod 0700 "$root/var/lib/driftwatch"
if [[ -n ${DW_ROOTFS_OUT:-} ]]; then
    mv "$root" "$DW_ROOTFS_OUT"
    exit 0
fi

# 4. The layer: sorted, 0:0, fixed mtime, no atime/ctime (GNU format), gzip without name/time.
blobs=$stage/oci/blobs/sha256
mkdir -p "$blobs"
(cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) >"$stage/files"
tar --no-recursion --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
    --format=gnu -C "$root" -cf "$stage/layer.tar" -T "$stage/files"
diff_id=$(sha256sum "$stage/layer.tar" | cut -d' ' -f1)
gzip -n -9 -c "$stage/layer.tar" >"$stage/layer.tar.gz"
layer=$(sha256sum "$stage/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$stage/layer.tar.gz")
mv "$stage/layer.tar.gz" "$blobs/$layer"

# 5. Config, manifest, index (compact JSON, keys in a fixed order).
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
python3 - "$stage/oci" "$arch" "$created" "$diff_id" "$layer" "$layer_size" "$version" \
    "$source_url" "$name" "$tag" <<'PY'
import hashlib, json, os, sys
oci, arch, created, diff_id, layer, layer_size, version, source, name, tag = sys.argv[1:]
def blob(obj):
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(oci, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return digest, len(data)
labels = {
    "org.opencontainers.image.title": "driftwatch",
    "org.opencontainers.image.description":
        "driftwatch container drift detection: driftwatch-sensor, driftwatch-collector, driftwatch",
    "org.opencontainers.image.version": version,
    "org.opencontainers.image.source": source,
}
config = {
    "architecture": arch, "os": "linux", "created": created,
    "config": {
        "Env": ["PATH=/usr/bin"],
        "Cmd": ["/usr/bin/driftwatch", "--version"],
        "WorkingDir": "/",
        "Labels": labels,
    },
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
    "history": [{"created": created, "created_by": "scripts/build-image.sh"}],
}
cfg, cfg_size = blob(config)
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + cfg, "size": cfg_size},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + layer, "size": int(layer_size)}],
    "annotations": {"org.opencontainers.image.version": version,
                    "org.opencontainers.image.source": source},
}
man, man_size = blob(manifest)
index = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + man, "size": man_size,
        "platform": {"architecture": arch, "os": "linux"},
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": tag},
    }],
}
with open(os.path.join(oci, "index.json"), "w") as f:
    json.dump(index, f, separators=(",", ":"), sort_keys=True)
with open(os.path.join(oci, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(oci, "digests"), "w") as f:
    f.write(f"manifest=sha256:{man}\nconfig=sha256:{cfg}\n")
PY
# shellcheck disable=SC1091
source "$stage/oci/digests"
rm "$stage/oci/digests"
(cd "$stage/oci" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) >"$stage/oci.files"
tar --no-recursion --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
    --format=gnu -C "$stage/oci" -cf "$out.tmp" -T "$stage/oci.files"
mv "$out.tmp" "$out"

rootfs_bytes=$(tar -tvf "$stage/layer.tar" | awk '{ s += $3 } END { print s + 0 }')
echo "name=$name"
echo "digest=$manifest"
echo "image_id=$config"
echo "layer=sha256:$layer"
echo "files=$(wc -l <"$stage/files") libraries=${#libs[@]}"
echo "size_rootfs=$rootfs_bytes"
echo "size_layer_gzip=$layer_size"
echo "size_archive=$(stat -c %s "$out")"
echo "archive=$out"
