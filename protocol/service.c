/* org.varlink.service: what GetInfo and GetInterfaceDescription answer.
 * The io.plughost text is docs/io.plughost.varlink itself, compiled in at
 * build time; the org.varlink.service text is the standard interface. */
#include <string.h>

#include "varlink.h"
#include "varlink-internal.h"

#define VENDOR "plughost"
#define PRODUCT "plughostd"

static const char interface_org_varlink_service[] =
        "# The Varlink service interface, provided by every Varlink service: it\n"
        "# describes the service and the interfaces it implements.\n"
        "interface org.varlink.service\n"
        "\n"
        "# The interfaces the service provides and information about it.\n"
        "method GetInfo() -> (\n"
        "  vendor: string,\n"
        "  product: string,\n"
        "  version: string,\n"
        "  url: string,\n"
        "  interfaces: []string\n"
        ")\n"
        "\n"
        "# The description of an interface the service implements.\n"
        "method GetInterfaceDescription(interface: string) -> (description: string)\n"
        "\n"
        "# The requested interface was not found.\n"
        "error InterfaceNotFound (interface: string)\n"
        "\n"
        "# The requested method was not found.\n"
        "error MethodNotFound (method: string)\n"
        "\n"
        "# The interface defines the method, but the service does not implement it.\n"
        "error MethodNotImplemented (method: string)\n"
        "\n"
        "# One of the parameters is invalid.\n"
        "error InvalidParameter (parameter: string)\n"
        "\n"
        "# The client is not allowed to call the method.\n"
        "error PermissionDenied ()\n"
        "\n"
        "# The method has to be called with \"more\" set to true.\n"
        "error ExpectedMore ()\n";

static const struct {
        const char *name;
        const char *description;
} interfaces[] = {
        { "org.varlink.service", interface_org_varlink_service },
        { "io.plughost", ph__interface_io_plughost },
};

#define N_INTERFACES (sizeof(interfaces) / sizeof(interfaces[0]))

/* version NULL means this build's PACKAGE_VERSION. NULL on allocation
 * failure or when version is not UTF-8. */
json_t *ph_varlink_get_info(const char *version)
{
        json_t *info, *names = json_array();

        for (size_t i = 0; names && i < N_INTERFACES; i++)
                if (json_array_append_new(names, json_string(interfaces[i].name)) < 0) {
                        json_decref(names);
                        names = NULL;
                }
        if (!names)
                return NULL;
        /* "o" takes names over even when the pack fails. */
        info = json_pack("{s:s, s:s, s:s, s:s, s:o}",
                         "vendor", VENDOR,
                         "product", PRODUCT,
                         "version", version ? version : PACKAGE_VERSION,
                         "url", PACKAGE_URL,
                         "interfaces", names);
        return info;
}

const char *ph_varlink_interface_description(const char *interface)
{
        if (!interface)
                return NULL;
        for (size_t i = 0; i < N_INTERFACES; i++)
                if (strcmp(interfaces[i].name, interface) == 0)
                        return interfaces[i].description;
        return NULL;
}
