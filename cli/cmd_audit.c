/* n3ctl audit [verify]: the hash-chained record of every change, here and on the targets. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/change.h"
#include "cli/term.h"
#include "cli/cli.h"
#include "cli/fleet.h"
#include "core/audit.h"
#include "core/xalloc.h"
#include "deploy/auditlog.h"
#include "deploy/inventory.h"
#include "deploy/remote.h"
#include "deploy/transport.h"

#define AUDIT_MAX_BYTES (256u * 1024u * 1024u)

static char *read_all(const char *path, size_t *len, struct err *err)
{
    FILE *f = fopen(path, "re");
    struct buf b;
    char chunk[65536];
    size_t n;

    if (f == NULL) {
        if (errno == ENOENT) {
            *len = 0;
            return xstrdup("");
        }
        err_set(err, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < AUDIT_MAX_BYTES)
        buf_add(&b, chunk, n);
    fclose(f);
    {
        char *out = buf_detach(&b, len);

        buf_done(&b);
        return out;
    }
}

/* The detail in a few words: key=value, hashes cut short, per-target results counted. */
static void add_detail(struct buf *b, const cJSON *detail)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, detail)
    {
        size_t before = b->len;

        if (b->len > 0)
            buf_addc(b, ' ');
        if (cJSON_IsString(it)) {
            bool hash = strcmp(it->string, "commit") == 0 || strcmp(it->string, "sha256") == 0;

            char shorter[13];

            term_add_shown(b, it->string, 32);
            buf_addc(b, '=');
            snprintf(shorter, sizeof shorter, "%s", it->valuestring);
            term_add_shown(b, hash ? shorter : it->valuestring, 80);
        } else if (cJSON_IsNumber(it)) {
            term_add_shown(b, it->string, 32);
            buf_addf(b, "=%.0f", it->valuedouble);
        } else if (cJSON_IsTrue(it)) {
            term_add_shown(b, it->string, 32);
        } else if (cJSON_IsArray(it) && strcmp(it->string, "targets") == 0) {
            const cJSON *t;
            struct buf failed;
            unsigned n = 0;

            buf_init(&failed);
            cJSON_ArrayForEach(t, it)
            {
                const char *res =
                    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "result"));
                const char *name =
                    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "target"));

                n++;
                if (res != NULL && strcmp(res, "failed") == 0) {
                    if (failed.len)
                        buf_addc(&failed, ',');
                    term_add_shown(&failed, name, 40);
                }
            }
            if (failed.len)
                buf_addf(b, "failed on %s", failed.data);
            else
                buf_truncate(b, before);
            buf_done(&failed);
        } else if (cJSON_IsObject(it)) {
            const char *who = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "who"));

            term_add_shown(b, it->string, 32);
            buf_addc(b, '=');
            term_add_shown(b, who != NULL ? who : "{...}", 80);
        } else {
            buf_truncate(b, before);
        }
    }
}

/* Column f of a record, for a terminal: padded to width columns (not bytes: a name in UTF-8
 * lines up too), longer values kept up to 64. */
static void add_field(struct buf *b, const cJSON *r, const char *key, size_t width)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, key));
    size_t cols = term_add_shown(b, v != NULL ? v : "-", 64);

    for (; cols < width; cols++)
        buf_addc(b, ' ');
    buf_adds(b, "  ");
}

static void print_record(const cJSON *r)
{
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(r, "targets"), *t;
    struct buf line, detail;
    size_t cols = 0;
    int n = cJSON_GetArraySize(tg), k = 0;

    buf_init(&line);
    buf_addf(&line, "%5.0f  ", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "seq")));
    add_field(&line, r, "time", 20);
    add_field(&line, r, "actor", 20);
    add_field(&line, r, "action", 14);
    add_field(&line, r, "result", 8);
    cJSON_ArrayForEach(t, tg)
    {
        if (!cJSON_IsString(t))
            continue;
        if (k++ == 3) {
            buf_addf(&line, ",+%d", n - 3);
            cols += (size_t)snprintf(NULL, 0, ",+%d", n - 3);
            break;
        }
        if (k > 1) {
            buf_addc(&line, ',');
            cols++;
        }
        cols += term_add_shown(&line, t->valuestring, 40);
    }
    if (k == 0) {
        buf_addc(&line, '-');
        cols++;
    }
    for (; cols < 16; cols++)
        buf_addc(&line, ' ');
    buf_adds(&line, "  ");
    buf_init(&detail);
    add_detail(&detail, cJSON_GetObjectItemCaseSensitive(r, "detail"));
    printf("%s%s\n", line.data, detail.len ? detail.data : "");
    buf_done(&detail);
    buf_done(&line);
}

/* One line a record: seq, time, actor, action, result, targets, and the detail in short.
 * Returns the lines of the last `last` that are not records (not shown). */
static unsigned long print_records(const char *text, size_t len, bool json, unsigned last)
{
    size_t nlines = 0, i = 0, start;
    unsigned long skipped = 0;
    cJSON *arr = json ? cJSON_CreateArray() : NULL;

    for (start = 0; start < len; start++)
        nlines += text[start] == '\n';
    if (!json)
        printf("%5s  %-20s  %-20s  %-14s  %-8s  %-16s  %s\n", "SEQ", "TIME", "WHO", "ACTION",
               "RESULT", "TARGETS", "DETAIL");
    start = 0;
    while (start < len) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t n = nl != NULL ? (size_t)(nl - text - start) : len - start;
        cJSON *r;

        if (last == 0 || i + last >= nlines) {
            r = audit_parse(text + start, n);
            if (r == NULL)
                skipped++;
            else if (json) {
                cJSON_AddItemToArray(arr, r);
                r = NULL;
            } else if (r != NULL) {
                print_record(r);
            }
            cJSON_Delete(r);
        }
        i++;
        start += n + 1;
    }
    if (json) {
        term_put_json(stdout, arr);
        cJSON_Delete(arr);
    }
    return skipped;
}

/* Records are listed, lines that are not are counted: a log with such lines was written by
 * something else, or torn, and listing it is not a success (exit 1). */
static int list_records(const char *what, const char *verify, const char *text, size_t len,
                        bool json, unsigned last)
{
    unsigned long skipped = print_records(text, len, json, last);

    if (skipped == 0)
        return EXIT_OK;
    fflush(stdout);
    fprintf(stderr,
            "n3ctl: %s: %lu line%s %s not an audit record, not listed; `%s` says what is wrong "
            "with %s\n",
            what, skipped, skipped == 1 ? "" : "s", skipped == 1 ? "is" : "are", verify,
            skipped == 1 ? "it" : "them");
    return EXIT_FAILED;
}

struct fetch {
    bool done;
    struct transport_result r;
    char *data;
    size_t len;
};

static void fetch_done(void *arg, const struct transport_result *r)
{
    struct fetch *f = arg;

    f->done = true;
    f->r = *r;
    if (r->status == TRANSPORT_OK && r->data != NULL) {
        f->data = xmalloc(r->len + 1);
        memcpy(f->data, r->data, r->len);
        f->data[r->len] = '\0';
        f->len = r->len;
    }
}

/* A target's audit log (empty when it has none). -1 with the reason printed. */
static int fetch_target_log(struct change *c, const char *name, char **text, size_t *len)
{
    const struct inv_target *t = inv_env_find(c->s.fleet.env, name);
    char *path = xasprintf("%s/%s", t->deploy_path, AUDITLOG_FILE);
    struct fetch f = {0};

    transport_read_file(remote_transport(c->s.remote, name), path, AUDIT_MAX_BYTES, fetch_done, &f);
    change_wait(c, &f.done);
    free(path);
    if (!f.done) {
        /* Abandoned (a second Ctrl-C): f may still be written to, so this frame stays. */
        fprintf(stderr, "n3ctl: interrupted while reading the audit log of %s\n", name);
        fflush(stderr);
        _exit(change_exit_code(c, EXIT_FAILED));
    }
    if (f.r.status == TRANSPORT_OK) {
        *text = f.data;
        *len = f.len;
        return 0;
    }
    if (f.r.status == TRANSPORT_FAILED && strstr(f.r.msg, "No such file") != NULL) {
        *text = xstrdup("");
        *len = 0;
        return 0;
    }
    term_printf(stderr, "n3ctl: %s: cannot read its audit log: %s\n", name, f.r.msg);
    return -1;
}

/* Check a log's chain, and that it still holds the head kept in head_path (when there is
 * one): a chain cannot show records cut off its end. A target's log (target not NULL) whose
 * last line is torn is repaired by the next append there: say so, and check the records before
 * it. */
static int verify_text(const char *what, const char *text, size_t len, const char *head_path,
                       const char *target)
{
    struct audit_problem p;
    struct audit_head h;
    unsigned long records;
    struct err err;
    int loaded = 1;
    bool torn = false;

    if (audit_verify(text, len, &p) != 0) {
        if (!p.torn || target == NULL) {
            printf("%s: BROKEN: %s\n", what, p.why);
            return -1;
        }
        torn = true;
        printf("%s: TORN: %s; ", what, p.why);
        if (p.records == 0)
            printf("no record before it; ");
        else
            printf("the %lu record%s before it hold%s the chain; ", p.records,
                   p.records == 1 ? "" : "s", p.records == 1 ? "s" : "");
        printf("the next change on %s cuts the torn line off (keeping it in a file beside the "
               "log) and notes that in its record (audit_gap)\n",
               target);
        len = p.torn_at;
    }
    records = p.records;
    if (head_path != NULL && (loaded = audit_head_load(head_path, &h, &err)) < 0)
        fprintf(stderr, "n3ctl: warning: %s\n", err.msg);
    if (loaded == 0 && audit_check_head(text, len, &h, &p) != 0) {
        printf("%s: BROKEN: %s\n", what, p.why);
        return -1;
    }
    if (torn)
        return -1;
    printf("%s: ok, %lu record%s, the chain holds", what, records, records == 1 ? "" : "s");
    if (loaded == 0)
        printf("; seq %llu, the last this machine wrote, is there", (unsigned long long)h.seq);
    putchar('\n');
    return 0;
}

int cmd_audit(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct fleet_args fa;
    const char *arg, *target = NULL;
    bool json = false, targets = false;
    unsigned last = 50;
    struct err err;
    int opt, first, rc = EXIT_OK;

    memset(&fa, 0, sizeof fa);
    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &first)) != -1) {
        int taken = fleet_args_take(&fa, cmd, opt, arg);

        if (taken < 0)
            return EXIT_USAGE;
        if (taken > 0)
            continue;
        switch (opt) {
        case 'j':
            json = true;
            break;
        case 'T':
            targets = true;
            break;
        case 't':
            target = arg;
            break;
        case 'n':
            if (!cli_parse_uint(cmd, "-n", arg, 0, 1000000, &last))
                return EXIT_USAGE;
            break;
        default:
            return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
        }
    }
    if (first < argc && (strcmp(argv[first], "verify") != 0 || first + 1 != argc)) {
        cli_usage_error(cmd, "the one subcommand is verify");
        return EXIT_USAGE;
    }
    if (first == argc && target == NULL) {
        char *path = audit_local_path(), *text;
        size_t len;

        text = read_all(path, &len, &err);
        if (text == NULL) {
            term_printf(stderr, "n3ctl: %s\n", err.msg);
            free(path);
            return EXIT_FAILED;
        }
        if (!json && len == 0)
            fprintf(stderr, "n3ctl: no changes recorded yet in %s\n", path);
        rc = list_records(path, "n3ctl audit verify", text, len, json, last);
        free(text);
        free(path);
        return rc;
    }
    {
        struct change c;
        size_t i, len;
        char *text;

        if (target != NULL && fa.nsel == 0) {
            fa.selectors[0] = target;
            fa.selectors[1] = NULL;
            fa.nsel = 1;
        }
        rc = change_open(&c, &fa, "audit");
        if (rc != 0)
            return rc;
        if (first == argc) { /* a target's records */
            char what[300], verify[200];

            if (fetch_target_log(&c, c.s.fleet.names[0], &text, &len) != 0)
                return change_end(&c, EXIT_FAILED, NULL, NULL);
            snprintf(what, sizeof what, "%s:%s", c.s.fleet.names[0], AUDITLOG_FILE);
            snprintf(verify, sizeof verify, "n3ctl audit verify -t %s", c.s.fleet.names[0]);
            rc = list_records(what, verify, text, len, json, last);
            free(text);
            return change_end(&c, rc, NULL, NULL);
        }
        /* verify: the local log, and with --targets (or -t) the targets' logs. */
        if (target == NULL) {
            char *path = audit_local_path();

            text = read_all(path, &len, &err);
            if (text == NULL) {
                term_printf(stderr, "n3ctl: %s\n", err.msg);
                rc = EXIT_FAILED;
            } else {
                char *head = audit_head_path(path);

                if (verify_text(path, text, len, head, NULL) != 0)
                    rc = EXIT_FAILED;
                free(head);
            }
            free(text);
            free(path);
        }
        for (i = 0; (targets || target != NULL) && i < c.s.fleet.n; i++) {
            const struct inv_target *t = inv_env_find(c.s.fleet.env, c.s.fleet.names[i]);
            char what[300], *head;

            if (fetch_target_log(&c, c.s.fleet.names[i], &text, &len) != 0) {
                rc = EXIT_FAILED;
                continue;
            }

            snprintf(what, sizeof what, "%s:%s", c.s.fleet.names[i], AUDITLOG_FILE);
            head = auditlog_head_path(remote_transport(c.s.remote, c.s.fleet.names[i]),
                                      t->deploy_path);
            if (verify_text(what, text, len, head, c.s.fleet.names[i]) != 0)
                rc = EXIT_FAILED;
            free(head);
            free(text);
        }
        return change_end(&c, rc, NULL, NULL);
    }
}
