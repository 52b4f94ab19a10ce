/* A table for the terminal. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli/table.h"
#include "cli/term.h"
#include "core/buf.h"
#include "core/xalloc.h"

#define CELL_MAX 200 /* columns a cell shows at most; the last column is cut to the line */

struct table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols, the header first */
};

/* The columns s takes once shown. */
static size_t columns(const char *s)
{
    struct buf b;
    size_t n;

    buf_init(&b);
    n = term_add_shown(&b, s, CELL_MAX);
    buf_done(&b);
    return n;
}

struct table *table_new(size_t ncols, const char *const *header)
{
    struct table *t = xcalloc(1, sizeof *t);

    t->ncols = ncols > TABLE_MAX_COLS ? TABLE_MAX_COLS : ncols;
    table_row(t, header);
    return t;
}

void table_row(struct table *t, const char *const *cells)
{
    size_t i;

    if (t->nrows == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
    }
    for (i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = xstrdup(cells[i] != NULL ? cells[i] : "-");
    t->nrows++;
}

void table_print(struct table *t, FILE *out, unsigned width)
{
    size_t w[TABLE_MAX_COLS] = {0}, r, c, used = 0;
    struct buf line;

    for (r = 0; r < t->nrows; r++) {
        for (c = 0; c < t->ncols; c++) {
            size_t n = columns(t->cells[r * t->ncols + c]);

            if (n > w[c])
                w[c] = n;
        }
    }
    for (c = 0; c + 1 < t->ncols; c++)
        used += w[c] + 2;
    buf_init(&line);
    for (r = 0; r < t->nrows; r++) {
        buf_reset(&line);
        for (c = 0; c + 1 < t->ncols; c++) {
            term_add_cell(&line, t->cells[r * t->ncols + c], w[c]);
            buf_adds(&line, "  ");
        }
        if (width == 0 || used + 8 > width)
            term_add_shown(&line, t->cells[r * t->ncols + c], CELL_MAX);
        else
            term_add_fit(&line, t->cells[r * t->ncols + c], width - 1 - used);
        /* no spaces at the end of a line */
        while (line.len > 0 && line.data[line.len - 1] == ' ')
            buf_truncate(&line, line.len - 1);
        buf_adds(&line, "\n");
        fwrite(line.data, 1, line.len, out);
    }
    buf_done(&line);
}

void table_free(struct table *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
