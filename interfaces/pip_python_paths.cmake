# CMAKE_PROJECT_INCLUDE hook for building interfaces against the ROS 2 wheels from PyPI.
#
# The wheels' exported `<pkg>__rosidl_generator_py` targets name the Python and NumPy include
# folders of the machine that built them (/opt/python/...), which do not exist here, and CMake
# refuses to generate with them. Once every find_package() of the project has run, drop the
# include folders that do not exist from those targets and add this interpreter's instead.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)

function(_seg_kd_point_wheels_at_local_python)
  get_directory_property(_imported DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
  foreach(_target IN LISTS _imported)
    if(NOT _target MATCHES "__rosidl_generator_py$")
      continue()
    endif()
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    foreach(_dir IN LISTS _dirs)
      if(EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      endif()
    endforeach()
    list(APPEND _kept ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
    list(REMOVE_DUPLICATES _kept)
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _seg_kd_point_wheels_at_local_python)
