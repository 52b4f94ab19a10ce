/* The end of a run: a table of the steps, a summary line, and the output of failed steps. */
#ifndef N3_REPORT_H
#define N3_REPORT_H

#include <stdbool.h>
#include <stdio.h>

struct executor;

#define REPORT_ALL_ROWS_UP_TO 40 /* bigger plans list only the steps that did not succeed */

/* width: cut long reasons to fit the terminal's columns; 0 for no limit (not a terminal). */
void report_table(FILE *out, const struct executor *ex, bool verbose, bool color, unsigned width);

#endif
