/* Host stand-in for the energy-monitor sync pin: every level change is appended to $FM_SYNC_LOG as
   "<level>" so a test can check that every RUN makes exactly one pulse and leaves the line low. */
#include <stdio.h>
#include <stdlib.h>

#include "fm_port.h"

static int current = -1;

void fm_port_sync_init(void) { current = 0; }

void fm_port_sync(int level)
{
    const char *path = getenv("FM_SYNC_LOG");
    if (level == current || path == NULL) {
        current = level;
        return;
    }
    current = level;
    FILE *f = fopen(path, "a");
    if (f != NULL) {
        fprintf(f, "%d\n", level);
        fclose(f);
    }
}
