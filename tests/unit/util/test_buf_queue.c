/* cp2p_buf, the bounded queue, errors and logging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/buf.h>
#include <cp2p/log.h>

#include "util/alloc.h"
#include "util/log_internal.h"
#include "util/queue.h"

static void buf_appends_up_to_max(void **state)
{
    cp2p_buf b;
    (void)state;
    cp2p_buf_init(&b, 5);
    assert_null(b.ptr);
    assert_int_equal(cp2p_buf_append(&b, "abc", 3), 0);
    assert_int_equal(cp2p_buf_append(&b, "def", 3), CP2P_ELIMIT);
    assert_int_equal(b.len, 3);
    assert_int_equal(cp2p_buf_append(&b, "de", 2), 0);
    assert_string_equal((char *)b.ptr, "abcde");
    assert_int_equal(cp2p_buf_append_byte(&b, 'x'), CP2P_ELIMIT);
    cp2p_buf_consume(&b, 2);
    assert_string_equal((char *)b.ptr, "cde");
    cp2p_buf_consume(&b, 99);
    assert_int_equal(b.len, 0);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&b); /* twice is safe */
}

static void buf_take_transfers_ownership(void **state)
{
    cp2p_buf b;
    uint8_t *p;
    (void)state;
    cp2p_buf_init(&b, 100);
    assert_int_equal(cp2p_buf_take(&b, &p), 0);
    assert_null(p);
    assert_int_equal(cp2p_buf_append(&b, "hello", 5), 0);
    assert_int_equal(cp2p_buf_take(&b, &p), 5);
    assert_memory_equal(p, "hello", 5);
    assert_null(b.ptr);
    assert_int_equal(b.len, 0);
    cp2p_free(p);
    assert_int_equal(cp2p_buf_append(&b, "x", 1), 0); /* still usable */
    cp2p_buf_fini_wipe(&b);
}

static void buf_grows_across_many_appends(void **state)
{
    cp2p_buf b;
    (void)state;
    cp2p_buf_init(&b, 1 << 20);
    for (int i = 0; i < 100000; i++) {
        assert_int_equal(cp2p_buf_append_byte(&b, (uint8_t)i), 0);
    }
    assert_int_equal(b.len, 100000);
    assert_true(b.cap <= (1 << 20) + 1);
    for (int i = 0; i < 100000; i += 9973) {
        assert_int_equal(b.ptr[i], (uint8_t)i);
    }
    cp2p_buf_fini(&b);
}

static int freed;
static void count_free(void *item, void *ud)
{
    (void)ud;
    freed++;
    cp2p_free(item);
}

static void queue_reject_policy(void **state)
{
    cp2p_queue q;
    int a = 1, b = 2, c = 3;
    (void)state;
    assert_int_equal(cp2p__queue_init(&q, 2, CP2P_QUEUE_REJECT, NULL, NULL), 0);
    assert_null(cp2p__queue_pop(&q));
    assert_int_equal(cp2p__queue_push(&q, &a), 0);
    assert_int_equal(cp2p__queue_push(&q, &b), 0);
    assert_int_equal(cp2p__queue_push(&q, &c), CP2P_EFULL);
    assert_int_equal(cp2p__queue_push(&q, NULL), CP2P_EINVAL);
    assert_int_equal(q.dropped, 1);
    assert_ptr_equal(cp2p__queue_peek(&q), &a);
    assert_ptr_equal(cp2p__queue_pop(&q), &a);
    assert_int_equal(cp2p__queue_push(&q, &c), 0); /* wraps around */
    assert_ptr_equal(cp2p__queue_pop(&q), &b);
    assert_ptr_equal(cp2p__queue_pop(&q), &c);
    assert_int_equal(cp2p__queue_len(&q), 0);
    cp2p__queue_fini(&q, NULL, NULL);
    assert_int_equal(cp2p__queue_init(&q, 0, CP2P_QUEUE_REJECT, NULL, NULL), CP2P_EINVAL);
}

static void queue_drop_oldest_policy(void **state)
{
    cp2p_queue q;
    (void)state;
    freed = 0;
    assert_int_equal(cp2p__queue_init(&q, 3, CP2P_QUEUE_DROP_OLDEST, count_free, NULL), 0);
    for (int i = 0; i < 10; i++) {
        int *v = cp2p_malloc(sizeof(int));
        *v = i;
        assert_int_equal(cp2p__queue_push(&q, v), 0);
    }
    assert_int_equal(q.dropped, 7);
    assert_int_equal(freed, 7);
    int *v = cp2p__queue_pop(&q);
    assert_int_equal(*v, 7); /* the newest three survive, oldest first */
    cp2p_free(v);
    cp2p__queue_fini(&q, count_free, NULL);
    assert_int_equal(freed, 9);
}

static void strerror_covers_every_code(void **state)
{
    (void)state;
    for (int e = 0; e >= -60; e--) {
        assert_non_null(cp2p_strerror(e));
    }
    assert_string_equal(cp2p_strerror(CP2P_EPROTO), "protocol error (malformed input)");
    assert_string_equal(cp2p_strerror(12345), "unknown error");
}

static char last_msg[256];
static char last_mod[32];
static int lines;
static void sink(cp2p_log_level level, const char *module, uint64_t conn, const char *msg,
                 void *ud)
{
    (void)level;
    (void)conn;
    (void)ud;
    lines++;
    snprintf(last_msg, sizeof(last_msg), "%s", msg);
    snprintf(last_mod, sizeof(last_mod), "%s", module);
}

static void log_levels_and_sink(void **state)
{
    cp2p_log_level l;
    (void)state;
    cp2p_log_set_sink(sink, NULL);
    cp2p_log_set_level(CP2P_LOG_INFO);
    lines = 0;
    CP2P_LOG(CP2P_LOG_DEBUG, "test", 1, "hidden %d", 1);
    assert_int_equal(lines, 0);
    CP2P_LOG(CP2P_LOG_INFO, "test", 1, "test.event n=%d", 42);
    assert_int_equal(lines, 1);
    assert_string_equal(last_msg, "test.event n=42");
    assert_string_equal(last_mod, "test");
    assert_int_equal(cp2p_log_set_module_level("chatty", CP2P_LOG_ERROR), 0);
    CP2P_LOG(CP2P_LOG_WARN, "chatty", 0, "suppressed");
    assert_int_equal(lines, 1);
    assert_int_equal(cp2p_log_set_module_level("verbose", CP2P_LOG_TRACE), 0);
    CP2P_LOG(CP2P_LOG_TRACE, "verbose", 0, "shown");
    assert_int_equal(lines, 2);
    /* An over-long line is truncated, not overflowed. */
    char big[4096];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    CP2P_LOG(CP2P_LOG_ERROR, "test", 0, "%s", big);
    assert_int_equal(lines, 3);
    assert_int_equal(cp2p_log_level_parse("warn", &l), 0);
    assert_int_equal(l, CP2P_LOG_WARN);
    assert_int_equal(cp2p_log_level_parse("loud", &l), CP2P_EINVAL);
    assert_int_equal(cp2p_log_set_module_level("", CP2P_LOG_INFO), CP2P_EINVAL);
    cp2p_log_set_sink(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_appends_up_to_max),
        cmocka_unit_test(buf_take_transfers_ownership),
        cmocka_unit_test(buf_grows_across_many_appends),
        cmocka_unit_test(queue_reject_policy),
        cmocka_unit_test(queue_drop_oldest_policy),
        cmocka_unit_test(strerror_covers_every_code),
        cmocka_unit_test(log_levels_and_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
