# SPDX-License-Identifier: GPL-2.0
# Shared settings for the scripts in this directory. Sourced, never executed.
#
# Everything the project builds or downloads lives under $XGR_CACHE, never in
# the repository and never at a fixed path of the build machine.

XGR_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XGR_CACHE=${XGR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xen-gntalloc-rs}

# Toolchain: the kernel and every module must be built by the very same rustc.
XGR_RUSTC=${XGR_RUSTC:-/usr/bin/rustc}
XGR_RUSTDOC=${XGR_RUSTDOC:-/usr/bin/rustdoc}
XGR_CLIPPY_DRIVER=${XGR_CLIPPY_DRIVER:-/usr/bin/clippy-driver}
XGR_LLVM=${XGR_LLVM:--22}
XGR_BINDGEN=${XGR_BINDGEN:-$XGR_CACHE/bindgen/bin/bindgen}
XGR_LIBCLANG=${XGR_LIBCLANG:-/usr/lib/llvm-22/lib}

XGR_KVER=7.3
XGR_KSRC_TARBALL=/usr/src/linux-source-$XGR_KVER.tar.xz
XGR_XEN=$XGR_CACHE/xen/xen-4.20
XGR_XEN_ARM64=$XGR_CACHE/xen/xen-4.20-arm64
XGR_BUSYBOX_ARM64=$XGR_CACHE/xen/busybox-arm64
# dom0's root in the two-domain pass: Debian trixie with Xen 4.20's toolstack (setup);
# the HVM-guest variant adds Debian's device model (qemu-system-xen).
XGR_TOOLSTACK_ROOT=$XGR_CACHE/toolstack-root.cpio.gz
XGR_TOOLSTACK_ROOT_HVM=$XGR_CACHE/toolstack-root-hvm.cpio.gz
XGR_TOOLSTACK_ROOT_ARM64=$XGR_CACHE/toolstack-root-arm64.cpio.gz

xgr_die() {
	echo "error: $*" >&2
	exit 1
}

xgr_log() {
	echo "==> $*" >&2
}

# Kernel make flags shared by the kernel build and the module build.
xgr_kmake_flags() {
	echo "LLVM=$XGR_LLVM RUSTC=$XGR_RUSTC RUSTDOC=$XGR_RUSTDOC BINDGEN=$XGR_BINDGEN CLIPPY_DRIVER=$XGR_CLIPPY_DRIVER"
}

# Directory of the configured and built kernel for a config name (test|release).
xgr_kbuild_dir() {
	echo "$XGR_CACHE/kbuild-$1"
}

# Kernel architecture (ARCH=) of a config.
xgr_karch() {
	case "$1" in arm64*) echo arm64 ;; *) echo x86 ;; esac
}

# Kernel image of a config, relative to its build directory.
xgr_kimage() {
	case "$1" in arm64*) echo arch/arm64/boot/Image ;; *) echo arch/x86/boot/bzImage ;; esac
}

# The Debian mirror the machine's apt sources use.
xgr_mirror() {
	local m
	m=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$m" ] || m=$(awk '/^deb / && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
	echo "${m:-http://deb.debian.org/debian}"
}

# xgr_toolstack_root ARCHIVE [--arch ARCH] [PKG...]: a minimal trixie root with xen-utils-4.20
# (which must match the hypervisor: xl, xenstored, xenconsoled, xen-init-dom0) and PKG, packed
# as a gzipped cpio archive at ARCHIVE, unless ARCHIVE.version says this recipe made it already.
# --arch arm64 makes a foreign root: debootstrap's first stage only (its second stage runs the
# root's own programs, which this x86 host cannot without binfmt_misc), then every package it
# fetched unpacked as it is. Nothing is configured, and a test dom0 needs nothing configured:
# xl, xenstored and xenconsoled run from the unpacked files (checked under qemu-aarch64: they
# get as far as opening /proc/xen/privcmd).
xgr_toolstack_root() {
	local out=$1 root version=1 arch="" foreign=()
	shift
	if [ "${1:-}" = --arch ]; then
		arch=$2
		shift 2
		foreign=(--foreign --arch="$arch")
		version="1-$arch-unpacked"
	fi
	[ $# -eq 0 ] || version="$version+$*"
	[ "$(cat "$out.version" 2>/dev/null)" = "$version" ] && return 0
	xgr_log "debootstrap of a ${arch:+$arch }toolstack dom0 root (trixie, xen-utils-4.20 $*; a few minutes)"
	root=$out.tmp.d
	rm -rf "$root"
	debootstrap "${foreign[@]}" --variant=minbase \
		--include="$(echo xen-utils-4.20 busybox-static kmod "$@" | tr ' ' ,)" \
		trixie "$root" "$(xgr_mirror)" >"$out.log" 2>&1 ||
		{ tail -n 20 "$out.log" >&2; xgr_die "debootstrap failed (see $out.log)"; }
	if [ -n "$arch" ]; then
		for deb in "$root"/var/cache/apt/archives/*.deb; do
			dpkg -x "$deb" "$root" || xgr_die "could not unpack $deb"
		done
		rm -rf "$root/debootstrap"
	fi
	# What a booted test dom0 never reads.
	rm -rf "$root"/usr/share/{doc,man,info,locale} "$root"/var/cache/apt/archives/*.deb \
		"$root"/var/lib/apt/lists/*
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$root"
	echo "$version" >"$out.version"
}

# Builds scripts/insn-profile.c, the QEMU plugin of run-qemu --profile, against the plugin
# header of the QEMU installed here (from Debian's source of that version) and prints the
# path of the .so. Installs GLib's headers, which the plugin header includes, if missing.
xgr_insn_profile_plugin() {
	local dir=$XGR_CACHE/qemu-plugin ver upstream so src=$XGR_REPO/scripts/insn-profile.c
	ver=$(dpkg-query -W -f='${Version}' qemu-system-x86) || return 1
	upstream=${ver#*:}
	upstream=${upstream%-*}
	so=$dir/insn-profile-$upstream.so
	mkdir -p "$dir"
	if [ ! -s "$dir/$upstream/qemu-plugin.h" ]; then
		xgr_log "fetching qemu-plugin.h from Debian's QEMU $upstream source" >&2
		mkdir -p "$dir/$upstream"
		curl -sSfL "http://deb.debian.org/debian/pool/main/q/qemu/qemu_$upstream.orig.tar.xz" |
			tar xJf - -O --wildcards '*/include/qemu/qemu-plugin.h' >"$dir/$upstream/qemu-plugin.h.tmp" &&
			mv "$dir/$upstream/qemu-plugin.h.tmp" "$dir/$upstream/qemu-plugin.h" || return 1
	fi
	if ! pkg-config --exists glib-2.0; then
		xgr_log "installing libglib2.0-dev (Debian) for the profiling plugin" >&2
		apt-get install -y -q --no-install-recommends libglib2.0-dev >&2 || return 1
	fi
	if [ ! -s "$so" ] || [ "$src" -nt "$so" ]; then
		# shellcheck disable=SC2046
		cc -O2 -Wall -Wextra -Wno-unused-parameter -shared -fPIC -I"$dir/$upstream" \
			$(pkg-config --cflags glib-2.0) -o "$so" "$src" >&2 || return 1
	fi
	echo "$so"
}

# The kernel command line of every test-kernel domain, dom0 and guest: page_owner for the
# leak checks and the freeing stack of a use-after-free report; page poisoning and SLUB's
# debugging (poison, red zones, sanity checks, user tracking) for writes to freed pages
# and objects (scripts/configs/test.config, scripts/uaf-detectors).
XGR_UAF_ARGS="page_owner=on page_poison=1 slub_debug=FZPU"
