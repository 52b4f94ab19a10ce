/* Live progress of a run on a terminal: one line per running block, redrawn in place. */
#ifndef N3_PROGRESS_H
#define N3_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

struct executor;
struct loop;
struct progress;

/* Redraws on `out` every interval_ms until progress_free. */
struct progress *progress_new(struct loop *loop, FILE *out, const struct executor *ex, bool color,
                              unsigned interval_ms);
/* A line under the blocks, e.g. "stopping 3 steps (Ctrl-C again kills them now)"; NULL clears. */
void progress_set_note(struct progress *p, const char *note);
void progress_draw(struct progress *p);
/* Erase what was drawn and stop redrawing. */
void progress_free(struct progress *p);


#endif
