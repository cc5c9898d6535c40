# zgrid_add_service(TARGET SOURCES...): builds a zgrid service plug-in (a
# shared library exporting zgrid_service_entry; docs/services.md).
#
# Inside zgrid's tree it uses the zgrid_service_api target; outside, either
# find_package(zgrid CONFIG) (which includes this file and defines
# zgrid::service_api) or include this file from where `cmake --install` put
# it (share/zgrid/cmake/): it then finds <zgrid/service.h> under the install
# prefix. Only the entry symbol is exported; nothing of zgrid is linked.
get_filename_component(_zgrid_service_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
function(zgrid_add_service target)
  add_library(${target} MODULE ${ARGN})
  set_target_properties(${target} PROPERTIES PREFIX "lib" CXX_VISIBILITY_PRESET hidden
                                             C_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  if(TARGET zgrid_service_api)
    target_link_libraries(${target} PRIVATE zgrid_service_api)
  elseif(TARGET zgrid::service_api)
    target_link_libraries(${target} PRIVATE zgrid::service_api)
  else()
    target_include_directories(${target} PRIVATE "${_zgrid_service_prefix}/include")
  endif()
endfunction()
