# Plugins for CURRENT Packer (1.7 and later; since 1.10 no builder ships inside Packer): `packer init packer/`
# installs them, then `packer build packer/` loads this file together with node.pkr.hcl.
#
# Debian's packer 1.6.6 has both builders built in and does not know `required_plugins` ("Blocks of type
# "required_plugins" are not expected here"): with it, name the template file instead of the directory,
#   packer build packer/node.pkr.hcl
# so that this file is not loaded. tests/packer/validate.sh checks both facts. See packer/README.md.
packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
    qemu = {
      source  = "github.com/hashicorp/qemu"
      version = ">= 1.1.0"
    }
  }
}
