#pragma once

#include "sluice/engine/registry.h"

namespace sluice {

/// Register `fault_inject`: a pass-through transform that fails, aborts the process or stalls
/// on a chosen batch. It exists to prove the no-data-loss guarantees in tests; it is a fake in
/// the sense of STYLE.md and is named as one.
void RegisterFaultNodes(NodeRegistry* registry);

}  // namespace sluice
