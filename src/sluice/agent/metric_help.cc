// The HELP line of each metric the procfs source writes (docs/AGENT.md, "Collectors and their
// rows", says the same at more length).

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <unordered_map>

#include "sluice/agent/exposition.h"

namespace sluice::agent {

namespace {

const std::unordered_map<std::string_view, std::string_view>& HelpTable() {
  static const auto* table = new std::unordered_map<std::string_view, std::string_view>{
      // cpu
      {"cpu_seconds_total", "Seconds all CPUs spent in each mode since boot."},
      {"cpu_core_seconds_total", "Seconds each CPU spent in each mode since boot."},
      {"cpus", "Number of CPUs."},
      {"context_switches_total", "Context switches since boot."},
      {"interrupts_total", "Interrupts serviced since boot."},
      {"forks_total", "Processes and threads created since boot."},
      {"boot_time_seconds", "Boot time, seconds since the Unix epoch."},
      {"procs_running", "Threads runnable now."},
      {"procs_blocked", "Threads blocked on I/O now."},
      {"cpu_usage_ratio", "Share of all CPUs' time in each mode over the last interval (0-1)."},
      {"cpu_busy_ratio", "Share of all CPUs' time busy over the last interval: 1 - idle - iowait."},
      {"cpu_core_usage_ratio", "Share of each CPU's time in each mode over the last interval."},
      {"cpu_core_busy_ratio", "Share of each CPU's time busy over the last interval."},
      {"context_switches_per_second", "Context switches per second over the last interval."},
      {"interrupts_per_second", "Interrupts per second over the last interval."},
      {"forks_per_second", "Processes and threads created per second over the last interval."},
      // memory
      {"memory_bytes", "Each byte-valued line of /proc/meminfo (field), in bytes."},
      {"memory_pages", "Each line of /proc/meminfo without a unit (field), in pages."},
      {"memory_used_bytes", "Memory in use: MemTotal - MemAvailable, in bytes."},
      {"memory_used_ratio", "Memory in use as a share of MemTotal (0-1)."},
      // load
      {"load1", "Load average over 1 minute."},
      {"load5", "Load average over 5 minutes."},
      {"load15", "Load average over 15 minutes."},
      // pressure
      {"pressure_stalled_seconds_total", "Seconds some or all tasks stalled on the resource."},
      {"pressure_avg10_ratio", "Share of time stalled on the resource, 10 s average (PSI)."},
      {"pressure_avg60_ratio", "Share of time stalled on the resource, 60 s average (PSI)."},
      {"pressure_avg300_ratio", "Share of time stalled on the resource, 300 s average (PSI)."},
      {"pressure_stalled_ratio", "Share of the last interval stalled on the resource."},
      // disk
      {"disk_reads_total", "Reads completed by the device."},
      {"disk_writes_total", "Writes completed by the device."},
      {"disk_read_bytes_total", "Bytes read from the device."},
      {"disk_written_bytes_total", "Bytes written to the device."},
      {"disk_read_seconds_total", "Seconds spent on reads by the device."},
      {"disk_write_seconds_total", "Seconds spent on writes by the device."},
      {"disk_io_seconds_total", "Seconds the device had I/O in flight."},
      {"disk_io_in_progress", "I/O requests in flight on the device now."},
      {"disk_discards_total", "Discards completed by the device."},
      {"disk_flushes_total", "Flushes completed by the device."},
      {"disk_reads_per_second", "Reads per second over the last interval."},
      {"disk_writes_per_second", "Writes per second over the last interval."},
      {"disk_read_bytes_per_second", "Bytes read per second over the last interval."},
      {"disk_written_bytes_per_second", "Bytes written per second over the last interval."},
      {"disk_busy_ratio", "Share of the last interval with I/O in flight on the device."},
      // network
      {"network_receive_bytes_total", "Bytes received by the interface."},
      {"network_receive_packets_total", "Packets received by the interface."},
      {"network_receive_errors_total", "Receive errors of the interface."},
      {"network_receive_drops_total", "Received packets dropped by the interface."},
      {"network_transmit_bytes_total", "Bytes sent by the interface."},
      {"network_transmit_packets_total", "Packets sent by the interface."},
      {"network_transmit_errors_total", "Transmit errors of the interface."},
      {"network_transmit_drops_total", "Packets to send dropped by the interface."},
      {"network_receive_bytes_per_second", "Bytes received per second over the last interval."},
      {"network_receive_packets_per_second", "Packets received per second over the last interval."},
      {"network_transmit_bytes_per_second", "Bytes sent per second over the last interval."},
      {"network_transmit_packets_per_second", "Packets sent per second over the last interval."},
      // filesystem
      {"filesystem_device_error", "1 when statfs of the mount failed, else 0."},
      {"filesystem_size_bytes", "Size of the filesystem in bytes."},
      {"filesystem_free_bytes", "Free bytes of the filesystem."},
      {"filesystem_available_bytes", "Bytes available to unprivileged users."},
      {"filesystem_files", "Inodes of the filesystem."},
      {"filesystem_files_free", "Free inodes of the filesystem."},
      {"filesystem_readonly", "1 when the filesystem is mounted read-only."},
      {"filesystem_used_ratio", "Share of the filesystem used: used / (used + available), as df."},
      // processes
      {"processes", "Processes in each state."},
      {"threads", "Threads of all processes."},
      {"processes_unreadable", "Processes whose stat could not be read (e.g. hidepid)."},
      {"process_cpu_seconds_per_second", "CPU seconds per second of a top process (1 = a core)."},
      {"process_cpu_seconds_total", "CPU seconds a top process used since it started."},
      {"process_resident_bytes", "Resident memory of a top process in bytes."},
      {"process_threads", "Threads of a top process."},
      {"process_swap_bytes", "Swapped-out memory of a top process in bytes."},
      // every collector
      {"collector_success", "1 when the collector worked in this sample, else 0."},
      {"collector_duration_seconds", "Seconds the collector took in this sample."},
  };
  return *table;
}

}  // namespace

std::string MetricHelp(std::string_view metric) {
  const auto& table = HelpTable();
  auto it = table.find(metric);
  if (it != table.end()) return std::string(it->second);
  return fmt::format("Host metric {} (docs/AGENT.md).", metric);
}

}  // namespace sluice::agent
