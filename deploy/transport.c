/* Transports: the operations every transport shares, built on run and put. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/loop.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/fence.h"
#include "deploy/inventory.h"
#include "deploy/transport.h"

/* ---- results ---- */

void transport_result_init(struct transport_result *r, enum transport_status status)
{
    memset(r, 0, sizeof *r);
    r->status = status;
    r->exit_code = -1;
}

void transport_result_fail(struct transport_result *r, enum transport_status status,
                           enum retry_kind kind, const char *fmt, ...)
{
    va_list ap;

    r->status = status;
    r->failure.kind = kind;
    r->failure.code = 0;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

/* ---- the interface ---- */

struct transport *transport_new(struct loop *loop, const struct inv_target *t,
                                struct ssh_pool *pool, uint64_t command_timeout_ms)
{
    struct transport *tr = t->transport == INV_LOCAL ? transport_local_new(loop, t->name)
                                                     : transport_ssh_new(loop, t, pool);

    tr->command_timeout_ms = command_timeout_ms;
    tr->where =
        t->transport == INV_LOCAL ? xstrdup("local") : xasprintf("ssh:%s:%u", t->host, t->port);
    return tr;
}

void transport_free(struct transport *t)
{
    if (t != NULL) {
        char *where = t->where, *fence_path = t->fence_path;

        t->ops->free(t);
        free(where);
        free(fence_path);
    }
}

int transport_bridge(struct transport *t, const char *host, unsigned port, const char **path,
                     const char **last_error, struct err *err)
{
    *path = NULL;
    *last_error = "";
    if (t->ops->bridge == NULL)
        return 0;
    return t->ops->bridge(t, host, port, path, last_error, err) == 0 ? 1 : -1;
}

struct transport_op *transport_dial(struct transport *t, const char *host, unsigned port,
                                    uint64_t timeout_ms, transport_done_fn done, void *arg)
{
    return t->ops->dial != NULL ? t->ops->dial(t, host, port, timeout_ms, done, arg) : NULL;
}

void transport_set_fence(struct transport *t, const struct transport_fence *f,
                         const char *deploy_path)
{
    free(t->fence_path);
    t->fence = f;
    t->fence_path = f != NULL ? xstrdup(deploy_path) : NULL;
}

const char *transport_name(const struct transport *t)
{
    return t->name;
}

/* ---- fenced commands: confirmed, then wrapped (deploy/fence.h) ---- */

struct fenced_op {
    struct transport_op op;   /* first: what callers hold */
    struct transport_run run; /* the caller's, with the wrapped command and a copy of the input */
    char *command;
    char *input;
    transport_output_fn on_output;
    transport_done_fn done;
    void *arg;
    struct transport_op *inner;
    bool waiting; /* for the fence's confirmation */
    bool stopped;
    struct transport_result early; /* not run: why */
};

static void fenced_free(struct fenced_op *f)
{
    free(f->command);
    free(f->input);
    free(f);
}

static void fenced_deliver_early(void *arg)
{
    struct fenced_op *f = arg;

    f->done(f->arg, &f->early);
    fenced_free(f);
}

static void fenced_output(void *arg, enum proc_stream stream, const char *data, size_t len)
{
    struct fenced_op *f = arg;

    if (f->on_output != NULL)
        f->on_output(f->arg, stream, data, len);
}

static void fenced_done(void *arg, const struct transport_result *r)
{
    struct fenced_op *f = arg;
    struct transport *t = f->op.t;
    const struct transport_fence *fence = t->fence;
    struct transport_result out;
    uint64_t theirs;

    f->inner = NULL;
    if (fence != NULL && fence_refused(r, &theirs)) {
        out = *r;
        transport_result_fail(&out, TRANSPORT_FENCED, RETRY_VALIDATION,
                              "refused on %s: the deploy lock is not ours any more (%s has "
                              "seen fence %llu, ours is %llu: someone took the lock over or "
                              "broke it)",
                              t->name, t->name, (unsigned long long)theirs,
                              (unsigned long long)fence->number);
        fence->refused(fence->arg, t->name, theirs);
        f->done(f->arg, &out);
    } else {
        f->done(f->arg, r);
    }
    fenced_free(f);
}

static void fenced_ready(void *arg);

/* Ask the fence; run the command when it says yes. */
static void fenced_try(struct fenced_op *f)
{
    struct transport *t = f->op.t;
    const struct transport_fence *fence = t->fence;
    char why[ERR_MSG_MAX - 64];
    int rc;

    if (f->stopped) {
        transport_result_init(&f->early, TRANSPORT_STOPPED);
        snprintf(f->early.msg, sizeof f->early.msg, "the command on %s was stopped", t->name);
        loop_defer(t->loop, fenced_deliver_early, f);
        return;
    }
    why[0] = '\0';
    rc = fence->confirm(fence->arg, fenced_ready, f, why, sizeof why);
    if (rc > 0) {
        f->waiting = true;
        return;
    }
    if (rc < 0) {
        transport_result_init(&f->early, TRANSPORT_FENCED);
        transport_result_fail(&f->early, TRANSPORT_FENCED, RETRY_VALIDATION, "not run on %s: %s",
                              t->name, why);
        loop_defer(t->loop, fenced_deliver_early, f);
        return;
    }
    f->inner = t->ops->run(t, &f->run);
}

static void fenced_ready(void *arg)
{
    struct fenced_op *f = arg;

    f->waiting = false;
    fenced_try(f);
}

static void fenced_stop(struct transport_op *op, uint64_t grace_ms)
{
    struct fenced_op *f = (struct fenced_op *)op;

    if (f->inner != NULL) {
        transport_stop(f->inner, grace_ms);
        return;
    }
    if (f->waiting && !f->stopped) {
        const struct transport_fence *fence = op->t->fence;

        f->stopped = true;
        f->waiting = false;
        fence->forget(fence->arg, fenced_ready, f);
        fenced_try(f);
        return;
    }
    f->stopped = true;
}

static bool fenced_exited(const struct transport_op *op)
{
    const struct fenced_op *f = (const struct fenced_op *)op;

    return f->inner == NULL || transport_exited(f->inner);
}

static struct transport_op *fenced_run(struct transport *t, const struct transport_run *r)
{
    struct fenced_op *f = xcalloc(1, sizeof *f);
    struct buf cmd;

    f->op.t = t;
    f->op.stop = fenced_stop;
    f->op.exited = fenced_exited;
    f->done = r->on_done;
    f->arg = r->arg;
    f->on_output = r->on_output;
    buf_init(&cmd);
    fence_wrap(&cmd, t->fence_path, t->fence->number, r->command);
    f->command = buf_detach(&cmd, NULL);
    buf_done(&cmd);
    f->run = *r;
    f->run.command = f->command;
    /* The command may start later than now: the caller's input need not live that long. */
    if (r->input != NULL && r->input_len > 0) {
        f->input = xmalloc(r->input_len);
        memcpy(f->input, r->input, r->input_len);
        f->run.input = f->input;
    }
    f->run.on_output = fenced_output;
    f->run.on_done = fenced_done;
    f->run.arg = f;
    fenced_try(f);
    return &f->op;
}

struct transport_op *transport_run(struct transport *t, const struct transport_run *r)
{
    if (t->fence != NULL && !r->unfenced)
        return fenced_run(t, r);
    return t->ops->run(t, r);
}

void transport_stop(struct transport_op *op, uint64_t grace_ms)
{
    op->stop(op, grace_ms);
}

bool transport_exited(const struct transport_op *op)
{
    return op->exited(op);
}

struct transport_op *transport_connect(struct transport *t, transport_done_fn done, void *arg)
{
    return t->ops->connect(t, done, arg);
}

uint64_t transport_handshake_us(const struct transport *t)
{
    return t->ops->handshake_us(t);
}

/* ---- operations made of commands ---- */

enum gen_kind { GEN_SIMPLE, GEN_READ, GEN_SHA256, GEN_UPLOAD };
enum gen_stage { STAGE_PUT, STAGE_CHECK, STAGE_RENAME, STAGE_CLEANUP };

/* One operation of several steps on the target, each a command (or a put). */
struct gen_op {
    struct transport_op op; /* first: what callers hold */
    enum gen_kind kind;
    enum gen_stage stage;
    struct transport_op *inner;
    transport_done_fn done;
    void *arg;
    char *what;  /* "mkdir /srv/app" for messages */
    char *path;  /* read, sha256, upload: the file */
    char *tmp;   /* upload: the temporary name */
    char *local; /* upload */
    char sha256[65];
    unsigned mode;
    size_t max;
    bool stopped;
    bool reads;                     /* its commands only read: no fence */
    transport_progress_fn progress; /* upload */
    struct transport_result saved;  /* upload: the failure to report after the clean-up */
};

static void gen_stop(struct transport_op *op, uint64_t grace_ms)
{
    struct gen_op *g = (struct gen_op *)op;

    g->stopped = true;
    if (g->inner != NULL)
        transport_stop(g->inner, grace_ms);
}

static bool gen_exited(const struct transport_op *op)
{
    const struct gen_op *g = (const struct gen_op *)op;

    return g->inner == NULL || transport_exited(g->inner);
}

static struct gen_op *gen_new(struct transport *t, enum gen_kind kind, transport_done_fn done,
                              void *arg)
{
    struct gen_op *g = xcalloc(1, sizeof *g);

    g->op.t = t;
    g->op.stop = gen_stop;
    g->op.exited = gen_exited;
    g->kind = kind;
    g->done = done;
    g->arg = arg;
    return g;
}

static void gen_free(struct gen_op *g)
{
    free(g->what);
    free(g->path);
    free(g->tmp);
    free(g->local);
    free(g);
}

static void gen_finish(struct gen_op *g, const struct transport_result *r)
{
    g->done(g->arg, r);
    gen_free(g);
}

/* The first line of a command's stderr, for messages ("mkdir: cannot create ...: Permission
 * denied"), at most len bytes. */
static void first_line(const struct tail *t, char *out, size_t len)
{
    char *text = tail_dup(t, NULL), *nl = strchr(text, '\n');

    if (nl != NULL)
        *nl = '\0';
    snprintf(out, len, "%s", text[0] != '\0' ? text : "no message");
    free(text);
}

/* A command that ran but failed: turn it into a failed operation that says why. */
static bool command_failed(struct gen_op *g, const struct transport_result *r,
                           struct transport_result *out)
{
    char why[300];

    if (r->status != TRANSPORT_OK) {
        *out = *r;
        return true;
    }
    if (r->exit_code == 0)
        return false;
    transport_result_init(out, TRANSPORT_FAILED);
    first_line(r->err, why, sizeof why);
    transport_result_fail(out, TRANSPORT_FAILED, RETRY_EXIT, "%s on %s failed: %s", g->what,
                          g->op.t->name, why);
    out->failure.code = r->exit_code;
    return true;
}

static void gen_run_done(void *arg, const struct transport_result *r);

static void gen_run(struct gen_op *g, const char *command, const void *input, size_t input_len,
                    size_t output_limit)
{
    struct transport_run run;

    memset(&run, 0, sizeof run);
    run.command = command;
    run.input = input;
    run.input_len = input_len;
    run.timeout_ms = g->op.t->command_timeout_ms;
    run.output_limit = output_limit;
    run.unfenced = g->reads;
    run.on_done = gen_run_done;
    run.arg = g;
    g->inner = transport_run(g->op.t, &run);
}

static void upload_next(struct gen_op *g, const struct transport_result *r);

static void gen_run_done(void *arg, const struct transport_result *r)
{
    struct gen_op *g = arg;
    struct transport_result out;

    g->inner = NULL;
    if (g->kind == GEN_UPLOAD) {
        upload_next(g, r);
        return;
    }
    if (command_failed(g, r, &out)) {
        gen_finish(g, &out);
        return;
    }
    transport_result_init(&out, TRANSPORT_OK);
    out.exit_code = 0;
    if (g->kind == GEN_READ) {
        char *data = tail_dup(r->out, &out.len);

        if (r->out->total > g->max) {
            transport_result_fail(&out, TRANSPORT_FAILED, RETRY_VALIDATION,
                                  "%s on %s: the file is larger than %zu bytes", g->what,
                                  g->op.t->name, g->max);
            out.len = 0;
        } else {
            out.data = data;
        }
        gen_finish(g, &out);
        free(data);
        return;
    }
    if (g->kind == GEN_SHA256) {
        char *text = tail_dup(r->out, NULL);
        size_t i;

        for (i = 0;
             i < 64 && ((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f'));
             i++)
            ;
        if (i != 64 || (text[64] != ' ' && text[64] != '\0')) {
            transport_result_fail(
                &out, TRANSPORT_FAILED, RETRY_VALIDATION,
                "%s on %s: no checksum printed (neither openssl nor sha256sum worked)", g->what,
                g->op.t->name);
        } else {
            text[64] = '\0';
            out.data = text;
            out.len = 64;
        }
        gen_finish(g, &out);
        free(text);
        return;
    }
    gen_finish(g, &out);
}

/* Stopped before its first command could even start: report it from the loop, not now. */
static void gen_deliver_stopped(void *arg)
{
    struct gen_op *g = arg;
    struct transport_result r;

    transport_result_init(&r, TRANSPORT_STOPPED);
    snprintf(r.msg, sizeof r.msg, "%s on %s was stopped", g->what, g->op.t->name);
    gen_finish(g, &r);
}

static struct transport_op *gen_start(struct gen_op *g, struct buf *cmd, const void *input,
                                      size_t input_len, size_t output_limit)
{
    gen_run(g, cmd->data, input, input_len, output_limit);
    buf_done(cmd);
    return &g->op;
}

static struct transport_op *sh_run(struct transport *t, const char *command, uint64_t timeout_ms,
                                   size_t output_limit, bool reads, transport_done_fn done,
                                   void *arg)
{
    struct transport_run run;

    memset(&run, 0, sizeof run);
    run.command = command;
    run.timeout_ms = timeout_ms;
    run.output_limit = output_limit;
    run.unfenced = reads;
    run.on_done = done;
    run.arg = arg;
    return transport_run(t, &run);
}

struct transport_op *transport_sh(struct transport *t, const char *command, uint64_t timeout_ms,
                                  size_t output_limit, transport_done_fn done, void *arg)
{
    return sh_run(t, command, timeout_ms, output_limit, false, done, arg);
}

struct transport_op *transport_sh_read(struct transport *t, const char *command,
                                       uint64_t timeout_ms, size_t output_limit,
                                       transport_done_fn done, void *arg)
{
    return sh_run(t, command, timeout_ms, output_limit, true, done, arg);
}

struct transport_op *transport_mkdir(struct transport *t, const char *path, transport_done_fn done,
                                     void *arg)
{
    struct gen_op *g = gen_new(t, GEN_SIMPLE, done, arg);
    struct buf cmd;

    g->what = xasprintf("mkdir %s", path);
    buf_init(&cmd);
    shell_cmdf(&cmd, "exec mkdir -p -- %s", path);
    return gen_start(g, &cmd, NULL, 0, 0);
}

struct transport_op *transport_read_file(struct transport *t, const char *path, size_t max,
                                         transport_done_fn done, void *arg)
{
    struct gen_op *g = gen_new(t, GEN_READ, done, arg);
    struct buf cmd;

    g->what = xasprintf("reading %s", path);
    g->max = max;
    g->reads = true;
    buf_init(&cmd);
    shell_cmdf(&cmd, "exec cat -- %s", path);
    /* The limit is for both streams: keep enough of stderr to say why reading failed. */
    return gen_start(g, &cmd, NULL, 0, max + 1 > 4096 ? max + 1 : 4096);
}

/* A name next to path that no other writer picks: path.tmp.<random>. */
static char *temp_name(struct transport *t, const char *path)
{
    return xasprintf("%s.n3tmp.%08x%08x", path, loop_random(t->loop), loop_random(t->loop));
}

struct transport_op *transport_write_file(struct transport *t, const char *path, const void *data,
                                          size_t len, unsigned mode, transport_done_fn done,
                                          void *arg)
{
    struct gen_op *g = gen_new(t, GEN_SIMPLE, done, arg);
    char *tmp = temp_name(t, path);
    struct buf cmd;

    g->what = xasprintf("writing %s", path);
    buf_init(&cmd);
    shell_cmdf(
        &cmd, "umask 077; cat > %s && chmod %o %s && mv -f -T -- %s %s || { rm -f -- %s; exit 1; }",
        tmp, mode, tmp, tmp, path, tmp);
    free(tmp);
    return gen_start(g, &cmd, data, len, 0);
}

struct transport_op *transport_symlink(struct transport *t, const char *target, const char *link,
                                       transport_done_fn done, void *arg)
{
    struct gen_op *g = gen_new(t, GEN_SIMPLE, done, arg);
    char *tmp = temp_name(t, link);
    struct buf cmd;

    g->what = xasprintf("pointing %s to %s", link, target);
    buf_init(&cmd);
    /* mv -T renames the new link over the old one: rename(2), atomic. */
    shell_cmdf(&cmd, "ln -sfn -- %s %s && mv -Tf -- %s %s || { rm -f -- %s; exit 1; }", target, tmp,
               tmp, link, tmp);
    free(tmp);
    return gen_start(g, &cmd, NULL, 0, 0);
}

/* The command that prints PATH's sha256 on a target. OpenSSL's, when the target
 * has it, uses the CPU's SHA instructions: five times faster than coreutils'
 * sha256sum, which is most of what checking a release's checksum on ten
 * targets at once costs (docs/PERFORMANCE.md, "Releases"). A path that
 * cannot be read goes to sha256sum, whose error message is the short one. */
static void sha256_cmd(struct buf *cmd, const char *path)
{
    shell_cmdf(cmd,
               "if [ -r %s ] && command -v openssl >/dev/null 2>&1; then exec openssl dgst "
               "-sha256 -r -- %s; fi; exec sha256sum -- %s",
               path, path, path);
}

struct transport_op *transport_sha256(struct transport *t, const char *path, transport_done_fn done,
                                      void *arg)
{
    struct gen_op *g = gen_new(t, GEN_SHA256, done, arg);
    struct buf cmd;

    g->what = xasprintf("sha256 of %s", path);
    g->reads = true;
    buf_init(&cmd);
    sha256_cmd(&cmd, path);
    return gen_start(g, &cmd, NULL, 0, 0);
}

/* ---- upload: put to a temporary name, check its sha256 there, rename into place ---- */

static void put_progress(void *arg, uint64_t sent)
{
    struct gen_op *g = arg;

    if (g->progress != NULL && !g->stopped)
        g->progress(g->arg, sent);
}

static void put_done(void *arg, const struct transport_result *r)
{
    upload_next(arg, r);
}

static void upload_cleanup(struct gen_op *g, const struct transport_result *failure)
{
    struct buf cmd;

    g->saved = *failure;
    g->stage = STAGE_CLEANUP;
    buf_init(&cmd);
    shell_cmdf(&cmd, "exec rm -f -- %s", g->tmp);
    gen_run(g, cmd.data, NULL, 0, 0);
    buf_done(&cmd);
}

static void upload_next(struct gen_op *g, const struct transport_result *r)
{
    struct transport_result out;
    struct buf cmd;

    g->inner = NULL;
    switch (g->stage) {
    case STAGE_PUT:
        if (r->status != TRANSPORT_OK) {
            /* The half-written temporary file must not stay behind: remove it, if we still can. */
            if (r->status == TRANSPORT_UNREACHABLE || g->stopped)
                gen_finish(g, r);
            else
                upload_cleanup(g, r);
            return;
        }
        g->stage = STAGE_CHECK;
        buf_init(&cmd);
        sha256_cmd(&cmd, g->tmp);
        g->reads = true; /* the check only reads; the rename after it is fenced */
        gen_run(g, cmd.data, NULL, 0, 0);
        g->reads = false;
        buf_done(&cmd);
        return;
    case STAGE_CHECK: {
        char *text;

        if (command_failed(g, r, &out)) {
            upload_cleanup(g, &out);
            return;
        }
        text = tail_dup(r->out, NULL);
        if (strncmp(text, g->sha256, 64) != 0) {
            transport_result_init(&out, TRANSPORT_FAILED);
            transport_result_fail(&out, TRANSPORT_FAILED, RETRY_VALIDATION,
                                  "%s: the copy on %s has sha256 %.64s, the local file %s; the "
                                  "copy was removed",
                                  g->what, g->op.t->name, text, g->sha256);
            free(text);
            upload_cleanup(g, &out);
            return;
        }
        free(text);
        if (g->stopped) {
            transport_result_init(&out, TRANSPORT_STOPPED);
            snprintf(out.msg, sizeof out.msg, "%s on %s was stopped", g->what, g->op.t->name);
            upload_cleanup(g, &out);
            return;
        }
        g->stage = STAGE_RENAME;
        buf_init(&cmd);
        shell_cmdf(&cmd, "exec mv -f -- %s %s", g->tmp, g->path);
        gen_run(g, cmd.data, NULL, 0, 0);
        buf_done(&cmd);
        return;
    }
    case STAGE_RENAME:
        if (command_failed(g, r, &out)) {
            upload_cleanup(g, &out);
            return;
        }
        transport_result_init(&out, TRANSPORT_OK);
        out.exit_code = 0;
        gen_finish(g, &out);
        return;
    case STAGE_CLEANUP:
        gen_finish(g, &g->saved);
        return;
    }
}

struct transport_op *transport_upload(struct transport *t, const char *local, const char *path,
                                      unsigned mode, const char *sha256_hex,
                                      transport_progress_fn progress, transport_done_fn done,
                                      void *arg)
{
    struct gen_op *g = gen_new(t, GEN_UPLOAD, done, arg);

    g->progress = progress;
    g->what = xasprintf("uploading %s to %s", local, path);
    g->local = xstrdup(local);
    g->path = xstrdup(path);
    g->tmp = temp_name(t, path);
    g->mode = mode;
    snprintf(g->sha256, sizeof g->sha256, "%s", sha256_hex);
    g->stage = STAGE_PUT;
    g->inner = t->ops->put(t, local, g->tmp, mode, put_progress, put_done, g);
    if (g->inner == NULL)
        loop_defer(t->loop, gen_deliver_stopped, g);
    return &g->op;
}

/* ---- local helpers ---- */

int transport_sha256_local(const char *path, char hex[65], struct err *err)
{
    unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0, i;
    EVP_MD_CTX *ctx;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return err_set(err, "cannot read %s: %s", path, strerror(errno));
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        fatal("out of memory for a digest");
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    while ((n = read(fd, buf, sizeof buf)) > 0)
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    if (n < 0) {
        int e = errno;

        EVP_MD_CTX_free(ctx);
        close(fd);
        return err_set(err, "cannot read %s: %s", path, strerror(e));
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    close(fd);
    for (i = 0; i < mdlen && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = '\0';
    return 0;
}

char *transport_stderr_line(const struct transport_result *r, const char *fallback)
{
    char *text = r->err != NULL ? tail_dup(r->err, NULL) : xstrdup(""), *line, *save = NULL;
    struct buf b;

    buf_init(&b);
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "n3ctl: ", 7) == 0)
            line += 7;
        buf_addf(&b, "%s%s", b.len > 0 ? "; " : "", line);
    }
    free(text);
    if (b.len == 0)
        buf_addf(&b, "%s%d", fallback, r->exit_code);
    line = buf_detach(&b, NULL);
    buf_done(&b);
    return line;
}
