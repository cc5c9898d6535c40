# -Wall -Wextra for every zgrid target (the tree builds clean with them).
function(zgrid_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-missing-field-initializers)
endfunction()
