/* A table for the terminal: columns as wide as their widest cell, the last cut to fit. Cells
 * may hold text from outside: they are shown safe (cli/term.h). */
#ifndef N3_TABLE_H
#define N3_TABLE_H

#include <stddef.h>
#include <stdio.h>

#define TABLE_MAX_COLS 16

struct table;

/* The header: ncols names. */
struct table *table_new(size_t ncols, const char *const *header);
/* A row: ncols cells (NULL: "-"). */
void table_row(struct table *t, const char *const *cells);
/* On out; width: the terminal's columns (the last column is cut to fit), 0: no limit. */
void table_print(struct table *t, FILE *out, unsigned width);
void table_free(struct table *t);

#endif
