// Compiles one SPIR-V compute module into a Vulkan compute pipeline and does nothing else: run under
// Mesa's RADV with RADV_FORCE_FAMILY (a null device: no AMD GPU needed) and RADV_DEBUG=shaders, the
// driver prints the shader's machine code on stderr, which bench/gpu/rdnaIsa.ts reads. No queue,
// command buffer or memory is used (the null device has none).
//
// Usage: compile_pipeline MODULE.spv BINDINGS ENTRY
//   BINDINGS: the module's set-0 bindings as "0:U,1:S,…" (U a uniform buffer, S a storage buffer)
// Prints the device name and driver info on stdout, then "compiled" once the pipeline exists, then,
// where the driver has VK_KHR_pipeline_executable_properties, the compiler's own statistics of the
// pipeline, one per line: "statistic: NAME = VALUE" (RADV: VGPRs, SGPRs, LDS size, code size…;
// NVIDIA: the register count and shared memory that decide how many warps an SM holds). With
// COMPILE_PIPELINE_IR_DIR set, the driver's internal representations (if it offers any) are written
// there as text files. bench/gpu/pipeline_stats.py reads these lines on an NVIDIA GPU.
// Built by bench/gpu/rdnaIsa.ts with the system's C compiler and Vulkan headers (libvulkan-dev), and
// by bench/exportSpirv.ts (`npm run bench:export-spirv`) for a device without a compiler.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

#define CHECK(call)                                                     \
  do {                                                                  \
    VkResult result_ = (call);                                          \
    if (result_ != VK_SUCCESS) {                                        \
      fprintf(stderr, "compile_pipeline: %s failed (%d)\n", #call, result_); \
      return 1;                                                         \
    }                                                                   \
  } while (0)

// The driver's statistics of every executable of the pipeline (a compute pipeline has one), as
// "statistic: NAME = VALUE" lines, and its internal representations into files of `ir_dir`.
static void print_statistics(VkDevice device, VkPipeline pipeline, const char *ir_dir) {
  PFN_vkGetPipelineExecutablePropertiesKHR get_properties = (PFN_vkGetPipelineExecutablePropertiesKHR)vkGetDeviceProcAddr(device, "vkGetPipelineExecutablePropertiesKHR");
  PFN_vkGetPipelineExecutableStatisticsKHR get_statistics = (PFN_vkGetPipelineExecutableStatisticsKHR)vkGetDeviceProcAddr(device, "vkGetPipelineExecutableStatisticsKHR");
  PFN_vkGetPipelineExecutableInternalRepresentationsKHR get_representations = (PFN_vkGetPipelineExecutableInternalRepresentationsKHR)vkGetDeviceProcAddr(device, "vkGetPipelineExecutableInternalRepresentationsKHR");
  if (get_properties == NULL || get_statistics == NULL) return;
  VkPipelineInfoKHR pipeline_info = {.sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, .pipeline = pipeline};
  uint32_t executables = 0;
  if (get_properties(device, &pipeline_info, &executables, NULL) != VK_SUCCESS) return;
  for (uint32_t e = 0; e < executables; e++) {
    VkPipelineExecutableInfoKHR info = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = pipeline, .executableIndex = e};
    uint32_t count = 0;
    if (get_statistics(device, &info, &count, NULL) != VK_SUCCESS || count == 0) continue;
    VkPipelineExecutableStatisticKHR *statistics = calloc(count, sizeof(VkPipelineExecutableStatisticKHR));
    if (statistics == NULL) return;
    for (uint32_t i = 0; i < count; i++) statistics[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
    if (get_statistics(device, &info, &count, statistics) == VK_SUCCESS) {
      for (uint32_t i = 0; i < count; i++) {
        const VkPipelineExecutableStatisticKHR *s = &statistics[i];
        printf("statistic: %s = ", s->name);
        switch (s->format) {
          case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: printf("%u\n", (unsigned)s->value.b32); break;
          case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: printf("%lld\n", (long long)s->value.i64); break;
          case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: printf("%llu\n", (unsigned long long)s->value.u64); break;
          case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR: printf("%g\n", s->value.f64); break;
          default: printf("?\n");
        }
      }
    }
    free(statistics);
    if (ir_dir == NULL || get_representations == NULL) continue;
    count = 0;
    if (get_representations(device, &info, &count, NULL) != VK_SUCCESS || count == 0) continue;
    VkPipelineExecutableInternalRepresentationKHR *representations = calloc(count, sizeof(VkPipelineExecutableInternalRepresentationKHR));
    if (representations == NULL) return;
    for (uint32_t i = 0; i < count; i++) representations[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INTERNAL_REPRESENTATION_KHR;
    // The sizes first (pData NULL), then the data.
    if (get_representations(device, &info, &count, representations) != VK_SUCCESS && count == 0) {
      free(representations);
      continue;
    }
    for (uint32_t i = 0; i < count; i++) representations[i].pData = representations[i].dataSize ? calloc(1, representations[i].dataSize) : NULL;
    VkResult filled = get_representations(device, &info, &count, representations);
    for (uint32_t i = 0; i < count; i++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%u-%u.txt", ir_dir, e, i);
      FILE *out = filled == VK_SUCCESS ? fopen(path, "wb") : NULL;
      if (out != NULL) {
        fprintf(out, "# %s: %s (%s)\n", representations[i].name, representations[i].description, representations[i].isText ? "text" : "binary");
        if (representations[i].pData != NULL) fwrite(representations[i].pData, 1, representations[i].dataSize, out);
        fclose(out);
        printf("representation: %s = %s\n", representations[i].name, path);
      }
      free(representations[i].pData);
    }
    free(representations);
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: compile_pipeline MODULE.spv BINDINGS ENTRY\n");
    return 2;
  }
  FILE *file = fopen(argv[1], "rb");
  if (file == NULL) {
    fprintf(stderr, "compile_pipeline: cannot open %s\n", argv[1]);
    return 2;
  }
  fseek(file, 0, SEEK_END);
  long size = ftell(file);
  fseek(file, 0, SEEK_SET);
  if (size <= 0 || size % 4 != 0) {
    fprintf(stderr, "compile_pipeline: %s is not a SPIR-V module\n", argv[1]);
    return 2;
  }
  uint32_t *code = malloc((size_t)size);
  if (code == NULL || fread(code, 1, (size_t)size, file) != (size_t)size) return 2;
  fclose(file);

  VkDescriptorSetLayoutBinding bindings[64];
  uint32_t binding_count = 0;
  for (char *item = strtok(argv[2], ","); item != NULL; item = strtok(NULL, ",")) {
    unsigned index;
    char kind;
    if (binding_count == 64 || sscanf(item, "%u:%c", &index, &kind) != 2 || (kind != 'U' && kind != 'S')) {
      fprintf(stderr, "compile_pipeline: bad binding '%s'\n", item);
      return 2;
    }
    bindings[binding_count++] = (VkDescriptorSetLayoutBinding){
      .binding = index,
      .descriptorType = kind == 'U' ? VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
      .descriptorCount = 1,
      .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
    };
  }

  VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_3};
  VkInstanceCreateInfo instance_info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
  VkInstance instance;
  CHECK(vkCreateInstance(&instance_info, NULL, &instance));
  uint32_t device_count = 1;
  VkPhysicalDevice physical;
  VkResult listed = vkEnumeratePhysicalDevices(instance, &device_count, &physical);
  if ((listed != VK_SUCCESS && listed != VK_INCOMPLETE) || device_count == 0) {
    fprintf(stderr, "compile_pipeline: no Vulkan device\n");
    return 1;
  }
  VkPhysicalDeviceDriverProperties driver = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  VkPhysicalDeviceProperties2 properties = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &driver};
  vkGetPhysicalDeviceProperties2(physical, &properties);
  printf("device: %s\ndriver: %s %s\n", properties.properties.deviceName, driver.driverName, driver.driverInfo);

  // Every feature the device has (the module may use 16-bit types, subgroups, the Vulkan memory model
  // or integer dot products, as Dawn enables them).
  VkPhysicalDeviceVulkan13Features features13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
  VkPhysicalDeviceVulkan12Features features12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &features13};
  VkPhysicalDeviceVulkan11Features features11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &features12};
  VkPhysicalDeviceFeatures2 features = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &features11};
  vkGetPhysicalDeviceFeatures2(physical, &features);
  // The pipeline statistics extension, where the driver has it (and its feature on).
  uint32_t extension_count = 0;
  vkEnumerateDeviceExtensionProperties(physical, NULL, &extension_count, NULL);
  VkExtensionProperties *extensions = calloc(extension_count ? extension_count : 1, sizeof(VkExtensionProperties));
  if (extensions == NULL) return 2;
  vkEnumerateDeviceExtensionProperties(physical, NULL, &extension_count, extensions);
  int has_statistics = 0;
  for (uint32_t i = 0; i < extension_count; i++) {
    if (strcmp(extensions[i].extensionName, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME) == 0) has_statistics = 1;
  }
  free(extensions);
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR executable_features = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
    .pipelineExecutableInfo = VK_TRUE,
  };
  if (has_statistics) features13.pNext = &executable_features;
  const char *enabled_extensions[] = {VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME};
  float priority = 1;
  VkDeviceQueueCreateInfo queue = {
    .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = 0, .queueCount = 1, .pQueuePriorities = &priority,
  };
  VkDeviceCreateInfo device_info = {
    .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &features, .queueCreateInfoCount = 1, .pQueueCreateInfos = &queue,
    .enabledExtensionCount = has_statistics ? 1 : 0, .ppEnabledExtensionNames = enabled_extensions,
  };
  VkDevice device;
  CHECK(vkCreateDevice(physical, &device_info, NULL, &device));

  VkDescriptorSetLayoutCreateInfo set_info = {
    .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = binding_count, .pBindings = bindings,
  };
  VkDescriptorSetLayout set;
  CHECK(vkCreateDescriptorSetLayout(device, &set_info, NULL, &set));
  // Dawn may pass a few words as push constants (e.g. for num_workgroups); room for them.
  VkPushConstantRange push = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = 128};
  VkPipelineLayoutCreateInfo layout_info = {
    .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1, .pSetLayouts = &set,
    .pushConstantRangeCount = 1, .pPushConstantRanges = &push,
  };
  VkPipelineLayout layout;
  CHECK(vkCreatePipelineLayout(device, &layout_info, NULL, &layout));
  VkShaderModuleCreateInfo module_info = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = (size_t)size, .pCode = code};
  VkShaderModule module;
  CHECK(vkCreateShaderModule(device, &module_info, NULL, &module));
  const char *ir_dir = getenv("COMPILE_PIPELINE_IR_DIR");
  VkComputePipelineCreateInfo pipeline_info = {
    .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
    .flags = has_statistics ? (VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR | (ir_dir != NULL ? VK_PIPELINE_CREATE_CAPTURE_INTERNAL_REPRESENTATIONS_BIT_KHR : 0)) : 0,
    .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = module, .pName = argv[3]},
    .layout = layout,
  };
  VkPipeline pipeline;
  CHECK(vkCreateComputePipelines(device, VK_NULL_HANDLE, 1, &pipeline_info, NULL, &pipeline));
  printf("compiled\n");
  if (has_statistics) print_statistics(device, pipeline, ir_dir);
  fflush(stdout);
  // The null device is left as it is: destroying it is not what this measures, and the process ends.
  return 0;
}
