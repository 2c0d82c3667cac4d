/*
 * The raw rabbitmq-c baseline for Benchmarks/run: the same work as `warren bench`,
 * with nothing between the program and the library. One thread, blocking calls.
 *
 *   amqp_baseline publish --queue Q [--count N] [--window W] [--size BYTES] [--exchange E]
 *       confirm.select, then persistent publishes to the default exchange with routing
 *       key Q, keeping up to W unconfirmed; done when all N are confirmed. With
 *       --exchange: to E instead (routing key Q), mandatory, as Warren publishes events;
 *       a returned (unroutable) publish is an error.
 *   amqp_baseline consume --queue Q [--count N] [--prefetch P]
 *       basic.qos P, basic.consume, and a basic.ack per delivery; done after N.
 *
 * The queue must exist. The broker URL comes from WARREN_AMQP_URL (default: the local
 * broker). Connection setup is not timed. Prints one line:
 *   msgs_per_sec=<float> cpu_us_per_msg=<float>
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#define BASELINE_NAME "amqp_baseline"
#include "baseline_common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Where the timed part of a run starts: wall clock and this process's CPU time. */
struct start {
  double wall, cpu;
};

static struct start start_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (struct start){.wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9, .cpu = cpu_seconds()};
}

/* The line Benchmarks/run parses, identical to warren bench's: throughput, and the CPU
 * (user + system) each message cost this process. */
static void report(long count, struct start started) {
  struct start now = start_clock();
  printf("msgs_per_sec=%.1f cpu_us_per_msg=%.2f\n", (double)count / (now.wall - started.wall),
         (now.cpu - started.cpu) * 1e6 / (double)count);
}

static int publish(const char *queue, const char *exchange, long count, long window, long size) {
  amqp_connection_state_t conn = connect_broker();
  amqp_confirm_select(conn, 1);
  check_reply(amqp_get_rpc_reply(conn), "confirm.select");

  char *body = malloc(size > 0 ? (size_t)size : 1);
  memset(body, 'x', (size_t)size);
  amqp_bytes_t message = {.len = (size_t)size, .bytes = body};
  amqp_bytes_t routing_key = amqp_cstring_bytes(queue);
  amqp_bytes_t exchange_name = exchange[0] ? amqp_cstring_bytes(exchange) : amqp_empty_bytes;
  amqp_boolean_t mandatory = exchange[0] ? 1 : 0;
  amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = 2};

  /* Delivery tags are 1..count; the broker may confirm them out of order and `multiple`
   * settles every earlier one, so track each tag. */
  unsigned char *confirmed = calloc((size_t)count + 1, 1);
  uint64_t lowest = 1; /* every tag below this one is confirmed */
  long sent = 0, acked = 0;

  struct start started = start_clock();
  while (acked < count) {
    while (sent < count && sent - acked < window) {
      check_status(amqp_basic_publish(conn, 1, exchange_name, routing_key, mandatory, 0, &props, message),
                   "basic.publish");
      sent++;
    }
    amqp_frame_t frame;
    check_status(amqp_simple_wait_frame(conn, &frame), "waiting for confirms");
    acked += settle_confirm(conn, &frame, confirmed, &lowest, count);
  }
  report(count, started);

  free(confirmed);
  free(body);
  disconnect(conn);
  return 0;
}

static int consume(const char *queue, long count, long prefetch) {
  amqp_connection_state_t conn = connect_broker();
  amqp_basic_qos(conn, 1, 0, (uint16_t)prefetch, 0);
  check_reply(amqp_get_rpc_reply(conn), "basic.qos");

  struct start started = start_clock();
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "basic.consume");
  for (long received = 0; received < count; received++) {
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(conn);
    check_reply(amqp_consume_message(conn, &envelope, NULL, 0), "consuming");
    check_status(amqp_basic_ack(conn, 1, envelope.delivery_tag, 0), "basic.ack");
    amqp_destroy_envelope(&envelope);
  }
  report(count, started);

  disconnect(conn);
  return 0;
}

static _Noreturn void usage(void) {
  fprintf(stderr,
          "usage: amqp_baseline publish --queue Q [--count N] [--window W] [--size BYTES] [--exchange E]\n"
          "       amqp_baseline consume --queue Q [--count N] [--prefetch P]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *mode = argv[1], *queue = NULL, *exchange = "";
  long count = 50000, window = 256, size = 256, prefetch = 256;
  for (int i = 2; i < argc; i += 2) {
    if (i + 1 >= argc) usage();
    const char *flag = argv[i], *value = argv[i + 1];
    if (strcmp(flag, "--queue") == 0) queue = value;
    else if (strcmp(flag, "--count") == 0) count = atol(value);
    else if (strcmp(flag, "--window") == 0) window = atol(value);
    else if (strcmp(flag, "--size") == 0) size = atol(value);
    else if (strcmp(flag, "--prefetch") == 0) prefetch = atol(value);
    else if (strcmp(flag, "--exchange") == 0) exchange = value;
    else usage();
  }
  if (!queue || count <= 0 || window <= 0 || size < 0 || prefetch <= 0 || prefetch > 65535) usage();
  if (strcmp(mode, "publish") == 0) return publish(queue, exchange, count, window, size);
  if (strcmp(mode, "consume") == 0) return consume(queue, count, prefetch);
  usage();
}
