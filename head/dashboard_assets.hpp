// The dashboard's files (head/dashboard/), compiled into the head by
// cmake/EmbedAssets.cmake so that it needs no files and no internet.
#pragma once

#include <string_view>
#include <vector>

namespace zgrid::head {

struct DashboardAsset {
  const char* path;          // "/" for index.html
  const char* content_type;  // with charset
  std::string_view body;
};

const std::vector<DashboardAsset>& dashboard_assets();

}  // namespace zgrid::head
