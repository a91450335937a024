// json_access: reading JSON the runtimes send (CRI's verbose info, the Docker Engine API)
// without ever throwing on a shape other than the one expected: a member that is missing,
// or a value of another type, reads as absent.
#pragma once

#include <initializer_list>

#include <nlohmann/json.hpp>

namespace driftwatch::json_access {

using Json = nlohmann::json;

// j[key], or null when j is not an object or has no such key.
inline const Json* Member(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

// j[k1][k2]..., or null when any step is missing.
inline const Json* Path(const Json& j, std::initializer_list<const char*> keys) {
  const Json* cur = &j;
  for (const char* k : keys) {
    cur = Member(*cur, k);
    if (cur == nullptr) return nullptr;
  }
  return cur;
}

}  // namespace driftwatch::json_access
