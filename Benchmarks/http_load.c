/*
 * A small HTTP/1.1 load generator for Warren's publish API: `--connections` threads, each
 * with one keep-alive connection, POST /v1/events one event at a time (the next request
 * only after the answer) until `--count` requests were answered in total. Every answer
 * must be 202. Prints one line:
 *   reqs_per_sec=… p50_ms=… p99_ms=…
 *
 *   http_load --port P --key KEY [--count N] [--connections C] [--size BYTES] [--prefix ID]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port, size = 256;
static long count = 20000;
static const char *key, *prefix = "http";
static atomic_long next_request;
static long long *latency_us;

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static _Noreturn void die(const char *what) {
  perror(what);
  exit(1);
}

static int connect_server(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Reads one response; returns its status. Bodies are small and carry Content-Length. */
static int read_response(int fd, char *buffer, size_t capacity) {
  size_t used = 0;
  char *end = NULL;
  while (!(end = memmem(buffer, used, "\r\n\r\n", 4))) {
    ssize_t n = read(fd, buffer + used, capacity - used);
    if (n <= 0) die("read");
    used += (size_t)n;
  }
  int status = atoi(buffer + 9);
  char *length = memmem(buffer, (size_t)(end - buffer), "content-length:", 15);
  if (!length) length = memmem(buffer, (size_t)(end - buffer), "Content-Length:", 15);
  size_t body = length ? (size_t)atol(length + 15) : 0;
  size_t have = used - (size_t)(end + 4 - buffer);
  while (have < body) {
    ssize_t n = read(fd, buffer, capacity);
    if (n <= 0) die("read body");
    have += (size_t)n;
  }
  return status;
}

static void *worker(void *unused) {
  (void)unused;
  int fd = connect_server();
  char request[4096], response[8192], body[2048], name[1024];
  for (;;) {
    long index = atomic_fetch_add(&next_request, 1);
    if (index >= count) break;
    /* A user.created event whose JSON body is about `size` bytes. */
    int base = snprintf(body, sizeof body, "{\"type\":\"user.created\",\"data\":{\"id\":\"%s-%ld\",\"email\":\"u@example.com\",\"name\":\"\"}}", prefix, index);
    int pad = size - base > 0 ? size - base : 1;
    if (pad > (int)sizeof name - 1) pad = (int)sizeof name - 1;
    memset(name, 'n', (size_t)pad);
    name[pad] = 0;
    int length = snprintf(body, sizeof body, "{\"type\":\"user.created\",\"data\":{\"id\":\"%s-%ld\",\"email\":\"u@example.com\",\"name\":\"%s\"}}", prefix, index, name);
    int header = snprintf(request, sizeof request,
                          "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                          "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                          key, length, body);
    double started = now_seconds();
    for (int sent = 0; sent < header;) {
      ssize_t n = write(fd, request + sent, (size_t)(header - sent));
      if (n <= 0) die("write");
      sent += (int)n;
    }
    int status = read_response(fd, response, sizeof response);
    if (status != 202) {
      fprintf(stderr, "http_load: request %ld answered %d: %.200s\n", index, status, response);
      exit(1);
    }
    latency_us[index] = (long long)((now_seconds() - started) * 1e6);
  }
  close(fd);
  return NULL;
}

static int compare(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int connections = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--key") == 0) key = argv[i + 1];
    else if (strcmp(argv[i], "--count") == 0) count = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--connections") == 0) connections = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--size") == 0) size = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--prefix") == 0) prefix = argv[i + 1];
  }
  if (!port || !key || count <= 0 || connections <= 0) {
    fprintf(stderr, "usage: http_load --port P --key KEY [--count N] [--connections C] [--size BYTES] [--prefix ID]\n");
    return 2;
  }
  latency_us = calloc((size_t)count, sizeof *latency_us);
  pthread_t *threads = calloc((size_t)connections, sizeof *threads);
  double started = now_seconds();
  for (int i = 0; i < connections; i++) pthread_create(&threads[i], NULL, worker, NULL);
  for (int i = 0; i < connections; i++) pthread_join(threads[i], NULL);
  double seconds = now_seconds() - started;
  qsort(latency_us, (size_t)count, sizeof *latency_us, compare);
  printf("reqs_per_sec=%.1f p50_ms=%.2f p99_ms=%.2f\n", (double)count / seconds, (double)latency_us[count / 2] / 1000,
         (double)latency_us[count * 99 / 100] / 1000);
  return 0;
}
