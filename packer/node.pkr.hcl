# k8s-image node image: a base image + the layer built by `imagebuilder build` + `k8s-agent check --root /` as the
# gate. Two sources share one provisioning sequence (scripts/provision.sh):
#   amazon-ebs.node  an AMI from the current Debian base AMI (owner/name filter), for EC2;
#   qemu.node        a qcow2 from a local base disk image, for the local deployment model and CI (TCG or KVM).
#
# Works with Debian's packer 1.6.6 (builders built in) and current Packer (plugins: see plugins.pkr.hcl and
# packer/README.md). Credentials are never in these files: AWS takes them from the environment (AWS_PROFILE,
# AWS_ACCESS_KEY_ID/..., an instance role); the qemu build logs in with a key the caller passes as a variable.
#
#   packer validate -var layer=out/demo/layer.tar.gz packer/node.pkr.hcl
#   packer build -only=amazon-ebs.node -var layer=out/demo/layer.tar.gz -var region=eu-west-1 packer/node.pkr.hcl
#   tests/packer/qemu-build.sh        (builds a base disk, then packer build -only=qemu.node, then boots the result)

packer {
  required_version = ">= 1.6.6"
}

# ---------------------------------------------------------------------------------------------------------------
# The layer (both sources)

variable "layer" {
  type        = string
  description = "Path to layer.tar.gz from `imagebuilder build`; its sha256sum sidecar LAYER.sha256 must sit beside it."
  default     = "out/demo/layer.tar.gz"
}

variable "layer_sha256" {
  type        = string
  description = "Optional pin: the layer's expected sha256 (64 hex). Empty: the sidecar's digest is trusted."
  default     = ""
  validation {
    condition     = regex_replace(var.layer_sha256, "^[0-9a-f]{64}$", "") == ""
    error_message = "The layer_sha256 must be empty or 64 lower-case hex digits (sha256sum's output)."
  }
}

variable "image_name" {
  type        = string
  description = "Image name prefix (AMI name, qcow2 file name)."
  default     = "k8s-node"
  validation {
    condition     = var.image_name != "" && regex_replace(var.image_name, "^[a-z0-9][a-z0-9._-]{0,63}$", "") == ""
    error_message = "The image_name must be 1-64 of [a-z0-9._-], starting with a letter or digit."
  }
}

variable "build_cleanup_paths" {
  type        = list(string)
  description = "Extra build-only files the base image had (credentials, markers) to remove before imaging."
  default     = []
}

# ---------------------------------------------------------------------------------------------------------------
# amazon-ebs

variable "region" {
  type        = string
  description = "AWS region to build in (the AMI is registered there)."
  default     = "eu-west-1"
}

variable "instance_type" {
  type        = string
  description = "Instance type of the temporary build instance."
  default     = "t3.small"
}

variable "source_ami_owner" {
  type        = string
  description = "Owner account of the base AMI: 136693071363 is Debian's (099720109477 is Canonical's)."
  default     = "136693071363"
}

variable "source_ami_name" {
  type        = string
  description = "Name filter of the base AMI, newest match wins (Ubuntu: ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*)."
  default     = "debian-13-amd64-*"
}

variable "ssh_username" {
  type        = string
  description = "Login user of the base AMI (Debian: admin, Ubuntu: ubuntu)."
  default     = "admin"
}

variable "ami_regions" {
  type        = list(string)
  description = "Further regions to copy the AMI to."
  default     = []
}

# ---------------------------------------------------------------------------------------------------------------
# qemu

variable "qemu_base_image" {
  type        = string
  description = "Base disk image (qcow2) with openssh-server, cloud-init and DHCP; copied, never modified."
  default     = "out/packer/base/base.qcow2"
}

variable "qemu_base_checksum" {
  type        = string
  description = "Checksum of the base disk image, as Packer takes it (sha256:<hex>, file:<url>, or none)."
  default     = "none"
}

variable "qemu_kernel" {
  type        = string
  description = "Kernel for direct kernel boot of a partitionless base disk; empty: boot the disk's own loader."
  default     = ""
}

variable "qemu_initrd" {
  type        = string
  description = "Initrd for direct kernel boot (with qemu_kernel)."
  default     = ""
}

variable "qemu_append" {
  type        = string
  description = "Kernel command line for direct kernel boot."
  default     = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
}

variable "qemu_accelerator" {
  type        = string
  description = "kvm where /dev/kvm works; tcg (software emulation, slower) everywhere else."
  default     = "tcg"
}

variable "qemu_serial_log" {
  type        = string
  description = "File the build VM's serial console is written to (empty: none)."
  default     = ""
}

variable "qemu_ssh_username" {
  type        = string
  description = "User the build logs in as (root on the test base disk; its key is removed by the clean-up)."
  default     = "root"
}

variable "qemu_ssh_private_key_file" {
  type        = string
  description = "Private key for the build login; the base disk holds the public half (removed before imaging)."
  default     = ""
}

variable "qemu_output_dir" {
  type        = string
  description = "Output directory of the qcow2 (must not exist)."
  default     = "out/packer/qemu"
}

variable "qemu_disk_compression" {
  type        = bool
  description = "Compress the output qcow2 (smaller file, slower final conversion)."
  default     = false
}

variable "qemu_memory" {
  type    = number
  default = 1024
}

variable "qemu_cpus" {
  type    = number
  default = 2
}

locals {
  # file() resolves relative paths against the template's directory in 1.6.6, the provisioners against the working
  # directory: make the layer path absolute (against the working directory) once.
  layer = abspath(var.layer)
  # The digest the Packer host sees in the sidecar; provision.sh compares the uploaded pair against it.
  # (regex_replace is the only regular-expression function Packer 1.6.6 has: no regex()/can(regex()).)
  layer_sidecar_sha256 = split(" ", trimspace(file("${local.layer}.sha256")))[0]
  upload_dir           = "/tmp/k8s-image"
  timestamp            = formatdate("YYYYMMDD-hhmmss", timestamp())

  # Packer's default user-mode network forwards the SSH port on every host address: bind it to loopback.
  qemu_net = [["-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"]]
  qemu_boot = var.qemu_kernel == "" ? [] : [
    ["-kernel", var.qemu_kernel],
    ["-initrd", var.qemu_initrd],
    ["-append", var.qemu_append],
  ]
  qemu_serial = var.qemu_serial_log == "" ? [] : [["-serial", "file:${var.qemu_serial_log}"]]
}

source "amazon-ebs" "node" {
  region        = var.region
  instance_type = var.instance_type
  ami_name      = "${var.image_name}-${substr(local.layer_sidecar_sha256, 0, 12)}-${local.timestamp}"
  ami_regions   = var.ami_regions
  source_ami_filter {
    owners      = [var.source_ami_owner]
    most_recent = true
    filters = {
      name                = var.source_ami_name
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
  ssh_username = var.ssh_username
  # (IMDSv2-only `metadata_options { http_tokens = "required" }` and `imds_support = "v2.0"` need the amazon plugin
  # of current Packer; 1.6.6's built-in builder rejects both. See packer/README.md.)
  tags = {
    Name                  = var.image_name
    "k8s-image:layer-sha" = local.layer_sidecar_sha256
    "k8s-image:base-ami"  = "{{ .SourceAMI }}"
  }
}

source "qemu" "node" {
  disk_image       = true
  iso_url          = var.qemu_base_image
  iso_checksum     = var.qemu_base_checksum
  format           = "qcow2"
  disk_compression = var.qemu_disk_compression
  skip_resize_disk = true
  accelerator      = var.qemu_accelerator
  memory           = var.qemu_memory
  cpus             = var.qemu_cpus
  disk_interface   = "virtio"
  net_device       = "virtio-net"
  headless         = true
  vnc_bind_address = "127.0.0.1"
  qemuargs         = concat(local.qemu_net, local.qemu_boot, local.qemu_serial)
  output_directory = var.qemu_output_dir
  vm_name          = "${var.image_name}.qcow2"

  communicator         = "ssh"
  ssh_username         = var.qemu_ssh_username
  ssh_private_key_file = var.qemu_ssh_private_key_file
  ssh_timeout          = "15m"
  shutdown_command     = "shutdown -P now"
  shutdown_timeout     = "5m"
}

build {
  sources = ["source.amazon-ebs.node", "source.qemu.node"]

  # 1. Upload the layer and its sha256sum sidecar (same base names: the sidecar names "layer.tar.gz").
  provisioner "shell" {
    inline = ["rm -rf ${local.upload_dir} && mkdir -m 0700 ${local.upload_dir}"]
  }
  provisioner "file" {
    source      = local.layer
    destination = "${local.upload_dir}/layer.tar.gz"
  }
  provisioner "file" {
    source      = "${local.layer}.sha256"
    destination = "${local.upload_dir}/layer.tar.gz.sha256"
  }

  # 2. Verify, extract at /, install the lock's host packages, enable k8s-agent.service, `k8s-agent check --root /`
  # as the gate, clean up for imaging. One script for every source; as root (sudo on AMIs).
  provisioner "shell" {
    script          = "${path.root}/scripts/provision.sh"
    execute_command = "chmod +x '{{ .Path }}'; if [ \"$(id -u)\" = 0 ]; then env {{ .Vars }} '{{ .Path }}'; else sudo -n env {{ .Vars }} '{{ .Path }}'; fi"
    environment_vars = [
      "K8S_IMAGE_UPLOAD=${local.upload_dir}",
      "K8S_LAYER_SHA256=${var.layer_sha256}",
      "K8S_LAYER_SIDECAR_SHA256=${local.layer_sidecar_sha256}",
      "K8S_BUILD_CLEANUP=${join(" ", var.build_cleanup_paths)}",
      "K8S_BUILD_SOURCE=${source.type}.${source.name}",
    ]
  }

  post-processor "manifest" {
    output     = "${path.root}/../out/packer/packer-manifest.json"
    strip_path = true
    custom_data = {
      layer_sha256 = local.layer_sidecar_sha256
    }
  }
}
