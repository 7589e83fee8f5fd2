# Removes from DIR every .sql file whose name is not in KEEP (file names, separated by commas): the
# build tree's copy of common/sql (CMakeLists.txt, fvctl-sql) must hold exactly the source's
# migrations, so a migration renamed or removed in the source (a stale NNN_old.sql left behind)
# is never applied by `fvctl migrate` from the build tree a second time under its old number.
string(REPLACE "," ";" keep "${KEEP}")
file(GLOB present "${DIR}/*.sql")
foreach(f ${present})
  get_filename_component(n "${f}" NAME)
  list(FIND keep "${n}" at)
  if(at EQUAL -1)
    message(STATUS "fvctl-sql: removing stale migration copy ${f}")
    file(REMOVE "${f}")
  endif()
endforeach()
