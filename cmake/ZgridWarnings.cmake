# -Wall -Wextra for every zgrid target (the tree builds clean with them);
# -Werror too with ZGRID_WERROR=ON, as scripts/test.sh (and so CI) builds.
option(ZGRID_WERROR "Treat compiler warnings as errors" OFF)
function(zgrid_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-missing-field-initializers)
  if(ZGRID_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
