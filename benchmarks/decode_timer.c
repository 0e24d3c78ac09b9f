/* Time llama-server's decodes from outside: an LD_PRELOAD shim for `serve_load.py --peer-decode-time`.

llama-server decodes through llama_process(); this wraps it, sums the seconds spent inside and
counts the calls, and after every call rewrites the file named by DECODE_TIMER_FILE with
"<seconds> <calls> <rows> <graphs reused>\n", the last two from llama.cpp's own counters
(llama_perf_context, as of the call before). serve_load.py reads it before and after a phase, to set llama-server's
time inside llama.cpp beside reason serve's (its /health `decode_seconds`). With no
DECODE_TIMER_FILE it only passes the call on.

    cc -O2 -shared -fPIC -o decode_timer.so benchmarks/decode_timer.c -ldl
    LD_PRELOAD=./decode_timer.so DECODE_TIMER_FILE=/tmp/t.txt llama-server ...
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int32_t (*process_fn)(void *ctx, int type, void *batch);

/* llama.h's llama_perf_context_data: llama.cpp's own counts of rows decoded and graphs reused */
struct perf_data {
    double t_start_ms, t_load_ms, t_p_eval_ms, t_eval_ms;
    int32_t n_p_eval, n_eval, n_reused;
};
typedef struct perf_data (*perf_fn)(const void *ctx);

static process_fn real_process;
static perf_fn perf;
static FILE *out;
static double total_s;
static long calls;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int32_t llama_process(void *ctx, int type, void *batch) {
    if (!real_process) {
        real_process = (process_fn)dlsym(RTLD_NEXT, "llama_process");
        perf = (perf_fn)dlsym(RTLD_DEFAULT, "llama_perf_context");
        const char *path = getenv("DECODE_TIMER_FILE");
        out = path ? fopen(path, "w") : NULL;
    }
    double t0 = now();
    int32_t rc = real_process(ctx, type, batch);
    total_s += now() - t0;
    calls += 1;
    if (out) {
        /* the counters as of the previous call: this one's are added at its synchronize */
        struct perf_data p = perf ? perf(ctx) : (struct perf_data){0};
        rewind(out);
        fprintf(out, "%.6f %ld %d %d          \n", total_s, calls, p.n_p_eval + p.n_eval,
                p.n_reused);
        fflush(out);
    }
    return rc;
}
