/*
 * An output file. A regular file (or a new one) is written next to its final name and
 * renamed into place, so it is never half-written; a symlink is followed to its target
 * first. Anything else (a pipe, /dev/stdout) is written directly. For --metrics and --traces.
 */
#ifndef N3_OUTFILE_H
#define N3_OUTFILE_H

#include <stdbool.h>
#include <stdio.h>

struct cli_cmd;

struct outfile {
    char *path; /* where the data ends up */
    char *tmp;  /* NULL when writing directly */
    FILE *f;
};

/* 0, or -1 (said, naming the command). */
int outfile_open(const struct cli_cmd *cmd, struct outfile *o, const char *path);
/* Finish the file: rename into place if everything was written and keep is set; otherwise
 * remove the temporary file. 0, or -1 (said). */
int outfile_close(struct outfile *o, bool keep);

#endif
