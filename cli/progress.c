/* Live progress of a run: one line per running block, redrawn in place on stderr. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli/progress.h"
#include "cli/term.h"
#include "core/fmt.h"
#include "core/buf.h"
#include "core/executor.h"
#include "core/loop.h"
#include "core/xalloc.h"

#define PROGRESS_MAX_BLOCKS 64
#define PROGRESS_BAR        20

struct progress {
    struct loop *loop;
    FILE *out;
    const struct executor *ex;
    bool color;
    unsigned interval_ms;
    unsigned lines; /* lines drawn last time */
    char *note;
    struct loop_timer *timer;
    struct buf frame;
};

/* Append s, cut to the room left on the line. */
static void add_cut(struct buf *b, const char *s, size_t *room)
{
    size_t n = strlen(s);

    if (n > *room)
        n = *room;
    buf_add(b, s, n);
    *room -= n;
}

static void draw_block(struct progress *p, const struct exec_block *b, unsigned width,
                       unsigned name_width)
{
    struct exec_counts c;
    unsigned done, failed, running, i, fill;
    char text[512], elapsed[32], bar[PROGRESS_BAR + 1];
    size_t room = width > 1 ? width - 1 : 1; /* never write the last column: no auto-wrap */
    const char *path = exec_block_path(b);
    unsigned depth = 0;

    for (i = 0; path[i] != '\0'; i++)
        depth += path[i] == '/';
    exec_block_counts(b, &c);
    running = c.by_status[EXEC_RUNNING];
    failed = c.by_status[EXEC_FAILED] + c.by_status[EXEC_TIMED_OUT];
    done = c.total - c.by_status[EXEC_PENDING] - running;
    fill = c.total ? (unsigned)((unsigned long long)done * PROGRESS_BAR / c.total) : 0;
    for (i = 0; i < PROGRESS_BAR; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[PROGRESS_BAR] = '\0';
    fmt_duration(elapsed, sizeof elapsed, exec_block_elapsed_us(b));

    buf_adds(&p->frame, "\r\033[2K");
    snprintf(text, sizeof text, "%*s%s (%s)", (int)(2 * depth), "",
             strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
             plan_strategy_name(exec_block_strategy(b)));
    snprintf(text + strlen(text), sizeof text - strlen(text), "%*s ",
             (int)(name_width > strlen(text) ? name_width - strlen(text) : 0), "");
    add_cut(&p->frame, text, &room);
    snprintf(text, sizeof text, "[%s] %u/%u done  %u running  ", bar, done, c.total, running);
    add_cut(&p->frame, text, &room);
    if (failed > 0 && room > 0) {
        buf_adds(&p->frame, term_sgr(p->color, TERM_RED));
        snprintf(text, sizeof text, "%u failed  ", failed);
        add_cut(&p->frame, text, &room);
        buf_adds(&p->frame, term_sgr(p->color, TERM_RESET));
    }
    add_cut(&p->frame, elapsed, &room);
    buf_addc(&p->frame, '\n');
}

void progress_draw(struct progress *p)
{
    const struct exec_block *blocks[PROGRESS_MAX_BLOCKS];
    unsigned width = term_width(p->out), height = term_height(p->out);
    size_t n, i, shown, max = height > 3 ? height - 2 : 1;

    buf_reset(&p->frame);
    if (p->lines > 0)
        buf_addf(&p->frame, "\r\033[%uA", p->lines);
    n = executor_running_blocks(p->ex, blocks, PROGRESS_MAX_BLOCKS);
    shown = n < PROGRESS_MAX_BLOCKS ? n : PROGRESS_MAX_BLOCKS;
    if (shown > max)
        shown = max;
    /* One width for the name column, so the bars line up. */
    {
        size_t nw = 0;

        for (i = 0; i < shown; i++) {
            const char *path = exec_block_path(blocks[i]), *slash = strrchr(path, '/');
            size_t depth = 0, k, len;

            for (k = 0; path[k] != '\0'; k++)
                depth += path[k] == '/';
            len = 2 * depth + strlen(slash ? slash + 1 : path) +
                  strlen(plan_strategy_name(exec_block_strategy(blocks[i]))) + 3;
            if (len > nw)
                nw = len;
        }
        if (nw > 48)
            nw = 48;
        p->lines = 0;
        for (i = 0; i < shown; i++, p->lines++)
            draw_block(p, blocks[i], width, (unsigned)nw);
    }
    if (n > shown) {
        buf_addf(&p->frame, "\r\033[2K  ... and %zu more blocks running\n", n - shown);
        p->lines++;
    }
    if (p->note != NULL) {
        buf_addf(&p->frame, "\r\033[2K%s%.*s%s\n", term_sgr(p->color, TERM_YELLOW),
                 (int)(width > 1 ? width - 1 : 1), p->note, term_sgr(p->color, TERM_RESET));
        p->lines++;
    }
    buf_adds(&p->frame, "\033[J");
    fwrite(p->frame.data, 1, p->frame.len, p->out);
    fflush(p->out);
}

static void tick(void *arg)
{
    struct progress *p = arg;

    progress_draw(p);
    loop_timer_start(p->timer, p->interval_ms);
}

struct progress *progress_new(struct loop *loop, FILE *out, const struct executor *ex, bool color,
                              unsigned interval_ms)
{
    struct progress *p = xcalloc(1, sizeof *p);

    p->loop = loop;
    p->out = out;
    p->ex = ex;
    p->color = color;
    p->interval_ms = interval_ms;
    buf_init(&p->frame);
    p->timer = loop_timer_new(loop, tick, p);
    loop_timer_start(p->timer, interval_ms);
    return p;
}

void progress_set_note(struct progress *p, const char *note)
{
    free(p->note);
    p->note = note != NULL ? xstrdup(note) : NULL;
    progress_draw(p);
}

void progress_free(struct progress *p)
{
    if (p == NULL)
        return;
    if (p->lines > 0) {
        fprintf(p->out, "\r\033[%uA\033[J", p->lines);
        fflush(p->out);
    }
    loop_timer_free(p->timer);
    free(p->note);
    buf_done(&p->frame);
    free(p);
}
