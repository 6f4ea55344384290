#pragma once

// The `webhook` sink: rows POSTed as JSON arrays to an HTTP endpoint (an alert receiver, a chat
// hook, an incident tool), with retries, a circuit breaker, timeouts and a bounded queue.

#include <memory>
#include <string>

#include "sluice/engine/node.h"
#include "sluice/engine/options.h"
#include "sluice/engine/registry.h"

namespace sluice::http {

/// Return the options of the `webhook` sink: url, headers, timeout, max_batch_rows, queue,
/// max_attempts, backoff, breaker_failures, breaker_recovery.
OptionSchema WebhookSinkOptionSpecs();

/// Build a `webhook` sink from validated options. Errors are kConfigError at the option's line
/// and never quote the URL beyond RedactUrl() nor any header value.
///
/// Each Write splits its batch into requests of at most `max_batch_rows` rows, each body a JSON
/// array of one object per row (the keys and values of the jsonl format: io::JsonlEncoder), and
/// queues them for the sink's sender thread, which POSTs them one at a time in order. Write
/// blocks while `queue` requests are queued or in flight (backpressure). A request is retried
/// on connection errors, timeouts, 408, 429 and 5xx with exponential backoff, behind a circuit
/// breaker; every attempt of one request carries the same `Idempotency-Key` header, the SHA-256
/// of its body. A batch's acks are released once every request for its rows got a 2xx; a request
/// that exhausted its attempts or got another status fails its batch (abandoned, so a rerun
/// delivers it again: at least once) and the run, with the status and the redacted URL.
Result<std::unique_ptr<Sink>> MakeWebhookSink(const NodeOptions& options);

/// Return the Idempotency-Key of a request body: the lower-case hex SHA-256 of `body`.
std::string IdempotencyKey(std::string_view body);

}  // namespace sluice::http

namespace sluice {

/// Register the `webhook` sink.
void RegisterHttpNodes(NodeRegistry* registry);

}  // namespace sluice
