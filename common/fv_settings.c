/* Settings every program shares: storage for the [common] section. */
#include "fv_settings.h"

fv_common_settings fv_common;
