// SPDX-License-Identifier: GPL-2.0
/*
 * Runner helper, not a test: prints how many pages the loaded gntalloc module
 * still owns, as module_pages() in gntalloc_util.h counts them (page_owner),
 * or -1 without page_owner. The runner's end-of-run leak check uses it, so
 * that the check and the B3 test share one definition of "the module's pages".
 */
#include "gntalloc_util.h"

int main(void)
{
	printf("%ld\n", module_pages());
	return 0;
}
