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
# dom0's root in the two-domain pass: Debian trixie with Xen 4.20's toolstack (setup).
XGR_TOOLSTACK_ROOT=$XGR_CACHE/toolstack-root.cpio.gz

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
