/* SPDX-License-Identifier: GPL-2.0 */
/* Input of the bindgen step in Kbuild: the Xen API the driver uses. */
#include <xen/xen.h>
#include <xen/page.h>
#include <xen/events.h>
#include <xen/grant_table.h>
#include "gntalloc_shim.h"
#include "include/uapi/xen/gntalloc.h"
