/*
 * The raw rabbitmq-c + libpq baseline of Benchmarks/run's consume → PostgreSQL cases:
 * what a straightforward C consumer does with the same inbox + effect work as Warren's
 * users.projection. One thread, blocking calls.
 *
 *   consume_pg_baseline publish --queue Q --prefix P [--count N] [--size BYTES] [--rate R] [--window W]
 *       confirm.select, then N persistent user.created CloudEvents (JSON bodies of about
 *       BYTES bytes) to the default exchange with routing key Q, up to W unconfirmed, at
 *       R per second (0: as fast as confirms allow). Event ids are `P-<n>-<publish µs>`,
 *       user ids `P-u<n>`: the id carries the publish time (CLOCK_REALTIME) for latency.
 *       Fills the queues of both sides and drives the latency cases.
 *   consume_pg_baseline consume --queue Q --consumer NAME [--count N] [--prefetch P] [--batch B] [--batch-wait MS]
 *       basic.qos P, basic.consume; per delivery, in a transaction of up to B deliveries
 *       (or what arrived within MS of the first): INSERT into warren_inbox (consumer NAME),
 *       and if new, the users upsert Warren's users.projection runs for user.created: one
 *       round trip per statement (prepared). COMMIT, then basic.ack multiple. Done after N.
 *
 * WARREN_AMQP_URL and WARREN_DATABASE_URL (defaults: the local services). Connection setup
 * is not timed. consume prints
 *   msgs_per_sec=<float> cpu_us_per_msg=<float> p50_ms=<float> p99_ms=<float>
 * the latencies being publish → commit per message; publish prints the first two fields.
 */
#define _GNU_SOURCE /* memmem */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#define BASELINE_NAME "consume_pg_baseline"
#include "baseline_common.h"
#include <libpq-fe.h>

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

static double monotonic_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall-clock microseconds: comparable across the publisher and consumer processes. */
static long long realtime_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------ publish */

static size_t event_body(char *out, size_t cap, const char *prefix, long n, long long published_us, long size) {
  time_t seconds = (time_t)(published_us / 1000000);
  struct tm tm;
  gmtime_r(&seconds, &tm);
  char stamp[80];
  snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(published_us / 1000 % 1000));
  const char *format = "{\"specversion\":\"1.0\",\"id\":\"%s-%ld-%lld\",\"source\":\"/bench\",\"type\":\"user.created\","
                       "\"time\":\"%s\",\"datacontenttype\":\"application/json\",\"data\":{\"id\":\"%s-u%ld\","
                       "\"name\":\"Bench User %ld%.*s\",\"email\":\"user%ld@example.com\"}}";
  int bare = snprintf(out, cap, format, prefix, n, published_us, stamp, prefix, n, n, 0, "", n);
  static const char padding[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
  int pad = size > bare ? (int)(size - bare) : 0;
  if (pad > (int)sizeof padding - 1) pad = (int)sizeof padding - 1;
  /* The schema caps name at 200 characters; the body sizes used here stay far below. */
  return (size_t)snprintf(out, cap, format, prefix, n, published_us, stamp, prefix, n, n, pad, padding, n);
}

static int publish(const char *queue, const char *prefix, long count, long size, double rate, long window) {
  amqp_connection_state_t conn = connect_broker();
  amqp_confirm_select(conn, 1);
  check_reply(amqp_get_rpc_reply(conn), "confirm.select");
  amqp_bytes_t routing_key = amqp_cstring_bytes(queue);
  unsigned char *confirmed = calloc((size_t)count + 1, 1);
  uint64_t lowest = 1;
  long sent = 0, acked = 0;
  char body[2048], id[256];

  double started = monotonic_seconds(), cpu = cpu_seconds();
  while (acked < count) {
    double now = monotonic_seconds();
    while (sent < count && sent - acked < window && (rate <= 0 || now >= started + (double)sent / rate)) {
      long long published = realtime_us();
      size_t length = event_body(body, sizeof body, prefix, sent, published, size);
      snprintf(id, sizeof id, "%s-%ld-%lld", prefix, sent, published);
      amqp_basic_properties_t props = {
          ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                    AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG,
          .delivery_mode = 2,
          .content_type = amqp_cstring_bytes("application/cloudevents+json"),
          .message_id = amqp_cstring_bytes(id),
          .type = amqp_cstring_bytes("user.created"),
          .app_id = amqp_cstring_bytes("/bench"),
          .timestamp = (uint64_t)(published / 1000000),
      };
      check_status(amqp_basic_publish(conn, 1, amqp_empty_bytes, routing_key, 0, 0, &props,
                                      (amqp_bytes_t){.len = length, .bytes = body}),
                   "basic.publish");
      sent++;
    }
    /* Paced: sleep in poll() until a confirm arrives or the next publish is due. Not
       rabbitmq-c's own timeout, which counts whole milliseconds and spins through the
       last one: with a 1 ms timeout that spun a whole core and starved what it measured. */
    struct timeval zero = {.tv_sec = 0, .tv_usec = 0};
    if (rate > 0 && !amqp_frames_enqueued(conn) && !amqp_data_in_buffer(conn)) {
      double wait = sent < count && sent - acked < window ? started + (double)sent / rate - monotonic_seconds() : 0.1;
      struct pollfd readable = {.fd = amqp_get_sockfd(conn), .events = POLLIN};
      poll(&readable, 1, wait > 0 ? (int)(wait * 1000) + 1 : 0);
    }
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(conn, &frame, rate > 0 ? &zero : NULL);
    if (status == AMQP_STATUS_TIMEOUT) continue;
    check_status(status, "waiting for confirms");
    acked += settle_confirm(conn, &frame, confirmed, &lowest, count);
  }
  printf("msgs_per_sec=%.1f cpu_us_per_msg=%.2f\n", (double)count / (monotonic_seconds() - started),
         (cpu_seconds() - cpu) * 1e6 / (double)count);
  free(confirmed);
  disconnect(conn);
  return 0;
}

/* ------------------------------------------------------------------ consume */

/* The string value following `"key":"` at or after `from`, copied into `out`; our
 * publisher's values contain no escapes. */
static const char *json_string(const char *from, const char *end, const char *key, char *out, size_t cap) {
  char pattern[32];
  int n = snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  const char *p = memmem(from, (size_t)(end - from), pattern, (size_t)n);
  if (!p) die("event without", key);
  p += n;
  const char *q = memchr(p, '"', (size_t)(end - p));
  if (!q || (size_t)(q - p) >= cap) die("bad event field", key);
  memcpy(out, p, (size_t)(q - p));
  out[q - p] = 0;
  return q;
}

static PGresult *check_pg(PGconn *pg, PGresult *result, const char *what) {
  ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) die(what, PQerrorMessage(pg));
  return result;
}

static void exec_simple(PGconn *pg, const char *sql) { PQclear(check_pg(pg, PQexec(pg, sql), sql)); }

/* users.projection's statement for user.created (Sources/Consumers/UsersProjection.swift). */
static const char *upsert_sql =
    "INSERT INTO users AS u (id, name, email, created_at, updated_at, last_event_time, name_event_time, email_event_time) "
    "VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz, $4::timestamptz, $4::timestamptz, $4::timestamptz) "
    "ON CONFLICT (id) DO UPDATE SET "
    "name = CASE WHEN excluded.name_event_time >= coalesce(u.name_event_time, '-infinity') THEN excluded.name ELSE u.name END, "
    "name_event_time = greatest(u.name_event_time, excluded.name_event_time), "
    "email = CASE WHEN excluded.email_event_time >= coalesce(u.email_event_time, '-infinity') THEN excluded.email ELSE u.email END, "
    "email_event_time = greatest(u.email_event_time, excluded.email_event_time), "
    "created_at = coalesce(u.created_at, excluded.created_at), "
    "updated_at = greatest(u.updated_at, excluded.updated_at), "
    "last_event_time = greatest(u.last_event_time, excluded.last_event_time)";

static int compare_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

/* The one line both consumers print; sorts `latency` (µs per event). */
static void report(long count, double seconds, double cpu_used, long long *latency) {
  qsort(latency, (size_t)count, sizeof *latency, compare_ll);
  printf("msgs_per_sec=%.1f cpu_us_per_msg=%.2f p50_ms=%.2f p99_ms=%.2f\n", (double)count / seconds,
         cpu_used * 1e6 / (double)count, (double)latency[count / 2] / 1000, (double)latency[count * 99 / 100] / 1000);
}

/* Broker only: publish → delivery latency of each event, acked at once, no database.
   The floor under every publish → commit number on this machine. */
static int receive_only(const char *queue, long count, long prefetch) {
  amqp_connection_state_t conn = connect_broker();
  amqp_basic_qos(conn, 1, 0, (uint16_t)prefetch, 0);
  check_reply(amqp_get_rpc_reply(conn), "basic.qos");
  long long *latency = malloc(sizeof(long long) * (size_t)count);
  char event_id[256];
  double started = monotonic_seconds(), cpu = cpu_seconds();
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "basic.consume");
  for (long received = 0; received < count; received++) {
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(conn);
    check_reply(amqp_consume_message(conn, &envelope, NULL, 0), "consuming");
    long long now = realtime_us();
    const char *body = envelope.message.body.bytes;
    json_string(body, body + envelope.message.body.len, "id", event_id, sizeof event_id);
    const char *dash = strrchr(event_id, '-');
    latency[received] = now - (dash ? atoll(dash + 1) : 0);
    check_status(amqp_basic_ack(conn, 1, envelope.delivery_tag, 0), "basic.ack");
    amqp_destroy_envelope(&envelope);
  }
  report(count, monotonic_seconds() - started, cpu_seconds() - cpu, latency);
  free(latency);
  disconnect(conn);
  return 0;
}

static int consume(const char *queue, const char *consumer, long count, long prefetch, long batch, long wait_ms) {
  const char *url = getenv("WARREN_DATABASE_URL");
  PGconn *pg = PQconnectdb(url && *url ? url : "postgresql://warren:warren@127.0.0.1:5432/warren");
  if (PQstatus(pg) != CONNECTION_OK) die("connecting to PostgreSQL", PQerrorMessage(pg));
  PQclear(check_pg(pg, PQprepare(pg, "inbox", "INSERT INTO warren_inbox (consumer, message_id) VALUES ($1, $2) "
                                              "ON CONFLICT DO NOTHING", 2, NULL), "prepare inbox"));
  PQclear(check_pg(pg, PQprepare(pg, "upsert", upsert_sql, 4, NULL), "prepare upsert"));

  amqp_connection_state_t conn = connect_broker();
  amqp_basic_qos(conn, 1, 0, (uint16_t)prefetch, 0);
  check_reply(amqp_get_rpc_reply(conn), "basic.qos");

  long long *published = malloc(sizeof(long long) * (size_t)batch);
  long long *latency = malloc(sizeof(long long) * (size_t)count);
  char event_id[256], time_text[64], user_id[256], name[256], email[256];
  long received = 0;

  double started = monotonic_seconds(), cpu = cpu_seconds();
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "basic.consume");
  while (received < count) {
    long in_batch = 0;
    uint64_t last_tag = 0;
    double deadline = 0;
    while (in_batch < batch && received + in_batch < count) {
      amqp_envelope_t envelope;
      amqp_maybe_release_buffers(conn);
      struct timeval timeout, *timeout_p = NULL;
      if (in_batch > 0) {
        double left = deadline - monotonic_seconds();
        if (left <= 0) break;
        timeout.tv_sec = (time_t)left;
        timeout.tv_usec = (suseconds_t)((left - (double)timeout.tv_sec) * 1e6);
        timeout_p = &timeout;
      }
      amqp_rpc_reply_t reply = amqp_consume_message(conn, &envelope, timeout_p, 0);
      if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) break;
      check_reply(reply, "consuming");
      if (in_batch == 0) {
        exec_simple(pg, "BEGIN");
        deadline = monotonic_seconds() + (double)wait_ms / 1000;
      }
      const char *body = envelope.message.body.bytes, *end = body + envelope.message.body.len;
      json_string(body, end, "id", event_id, sizeof event_id);
      json_string(body, end, "time", time_text, sizeof time_text);
      const char *data = memmem(body, (size_t)(end - body), "\"data\":", 7);
      if (!data) die("event without", "data");
      json_string(data, end, "id", user_id, sizeof user_id);
      json_string(data, end, "name", name, sizeof name);
      json_string(data, end, "email", email, sizeof email);

      const char *inbox_params[2] = {consumer, event_id};
      PGresult *inserted = check_pg(pg, PQexecPrepared(pg, "inbox", 2, inbox_params, NULL, NULL, 0), "inbox insert");
      if (strcmp(PQcmdTuples(inserted), "1") == 0) {
        const char *params[4] = {user_id, name, email, time_text};
        PQclear(check_pg(pg, PQexecPrepared(pg, "upsert", 4, params, NULL, NULL, 0), "users upsert"));
      }
      PQclear(inserted);
      const char *dash = strrchr(event_id, '-');
      published[in_batch++] = dash ? atoll(dash + 1) : 0;
      last_tag = envelope.delivery_tag;
      amqp_destroy_envelope(&envelope);
    }
    if (in_batch == 0) continue;
    exec_simple(pg, "COMMIT");
    long long committed = realtime_us();
    check_status(amqp_basic_ack(conn, 1, last_tag, 1), "basic.ack");
    for (long i = 0; i < in_batch; i++) latency[received + i] = committed - published[i];
    received += in_batch;
  }
  report(count, monotonic_seconds() - started, cpu_seconds() - cpu, latency);
  free(published);
  free(latency);
  disconnect(conn);
  PQfinish(pg);
  return 0;
}

static _Noreturn void usage(void) {
  fprintf(stderr,
          "usage: consume_pg_baseline publish --queue Q --prefix P [--count N] [--size BYTES] [--rate R] [--window W]\n"
          "       consume_pg_baseline consume --queue Q --consumer NAME [--count N] [--prefetch P] [--batch B] "
          "[--batch-wait MS]\n"
          "       consume_pg_baseline receive --queue Q [--count N] [--prefetch P]   (broker only: publish -> delivery)\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *mode = argv[1], *queue = NULL, *prefix = NULL, *consumer = NULL;
  long count = 50000, size = 256, window = 256, prefetch = 256, batch = 100, wait_ms = 20;
  double rate = 0;
  for (int i = 2; i < argc; i += 2) {
    if (i + 1 >= argc) usage();
    const char *flag = argv[i], *value = argv[i + 1];
    if (strcmp(flag, "--queue") == 0) queue = value;
    else if (strcmp(flag, "--prefix") == 0) prefix = value;
    else if (strcmp(flag, "--consumer") == 0) consumer = value;
    else if (strcmp(flag, "--count") == 0) count = atol(value);
    else if (strcmp(flag, "--size") == 0) size = atol(value);
    else if (strcmp(flag, "--rate") == 0) rate = atof(value);
    else if (strcmp(flag, "--window") == 0) window = atol(value);
    else if (strcmp(flag, "--prefetch") == 0) prefetch = atol(value);
    else if (strcmp(flag, "--batch") == 0) batch = atol(value);
    else if (strcmp(flag, "--batch-wait") == 0) wait_ms = atol(value);
    else usage();
  }
  if (!queue || count <= 0 || window <= 0 || prefetch <= 0 || prefetch > 65535 || batch <= 0 || wait_ms < 0) usage();
  if (strcmp(mode, "publish") == 0 && prefix) return publish(queue, prefix, count, size, rate, window);
  if (strcmp(mode, "consume") == 0 && consumer) return consume(queue, consumer, count, prefetch, batch, wait_ms);
  if (strcmp(mode, "receive") == 0) return receive_only(queue, count, prefetch);
  usage();
}
